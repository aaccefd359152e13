"""The root command group imports a command's module only when the command is used."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from contracts.kinds import TERMINAL, Outcome
from ops.cli.lazy import LazyCommand, LazyGroup
from ops.cli.main import COMMANDS, app
from ops.cli.options import WAIT_EXIT, ExitCode

HEAVY = ("nats", "asyncpg", "pydantic", "rich", "faiss", "numpy", "cryptography", "contracts")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_importing_the_cli_imports_no_library_a_command_uses() -> None:
    loaded = _loaded_after("import ops.cli.main")

    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_the_help_page_lists_every_command_without_importing_one() -> None:
    loaded = _loaded_after(
        "from typer.testing import CliRunner\nfrom ops.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "assert all(n in r.output for n in ('intent', 'audit', 'demo', 'up', 'dlq'))"
    )

    assert not {m for m in loaded if m.startswith("ops.cli.") and m.split(".")[2] != "main"} - {
        "ops.cli.deferred", "ops.cli.errors", "ops.cli.lazy", "ops.cli.options",
    }  # fmt: skip
    assert "nats" not in loaded


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda spec: spec.name)
def test_each_summary_is_the_command_s_own_short_help(spec: object) -> None:
    assert isinstance(spec, LazyCommand)
    cmd = spec.load()

    assert cmd.name == spec.name
    assert spec.summary == (cmd.short_help or cmd.help or "").strip().splitlines()[0]


def test_a_command_is_found_by_name_and_a_typo_is_answered_with_suggestions() -> None:
    root = typer.main.get_command(app)
    assert isinstance(root, LazyGroup)
    ctx = root.context_class(root)

    assert [spec.name for spec in COMMANDS] == root.list_commands(ctx)
    assert root.get_command(ctx, "intent") is root.get_command(ctx, "intent")  # loaded once
    assert root.get_command(ctx, "nonesuch") is None


def test_the_wait_exit_codes_cover_each_terminal_outcome_with_a_distinct_code() -> None:
    assert set(WAIT_EXIT) == {*TERMINAL.values(), Outcome.HANDED_OVER}  # as IntentTrail.terminal
    codes = [*WAIT_EXIT.values(), ExitCode.TIMED_OUT]

    assert len(set(codes)) == len(codes)
    assert WAIT_EXIT["filled"] == ExitCode.OK


def test_nats_under_the_cli_loads_without_aiohttp_and_aiohttp_still_works_after() -> None:
    loaded = _loaded_after(
        "import ops.cli\nimport sys\nimport nats.aio.transport as t\n"
        "assert t.aiohttp is None and 'aiohttp' not in sys.modules\n"
        "from aiohttp import web\nassert web.Application"
    )

    assert "nats" in loaded and "aiohttp.web" in loaded
