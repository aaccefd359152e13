"""Every command group given what an attacker or a tired operator would give it: huge and binary
payload files, out-of-range and malformed ids, missing certificates, a corrupt run file, an
oversized reason, a data dir with no stack, ids that exist nowhere on a running stack.

Each answer is judged as a user sees it, from the real `tradeops` executable: the documented
exit code, exactly one line on stderr starting `error:` and no traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from ops.cli.options import ExitCode, documented_exit_codes
from ops.stack.embedded import EmbeddedStack
from tests.support.stack import running_stack

pytestmark = [pytest.mark.integration]

TRADEOPS = str(Path(sys.executable).parent / "tradeops")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
"""The test process's TRADEOPS_* (load_settings sets TRADEOPS_CONFIG) stay out of the CLI."""
NO_SUCH_INTENT = "3f1e2d4c-0000-4000-8000-000000000001"


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


def tradeops(*args: str | Path, timeout_s: float = 60.0) -> Done:
    proc = subprocess.run(
        [TRADEOPS, *map(str, args)],
        env=CLEAN_ENV,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    return Done(
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


def assert_refused(done: Done, code: ExitCode, *words: str) -> str:
    """The documented `code`, one `error:` line on stderr naming `words`, no traceback."""
    assert "Traceback" not in done.err + done.out
    assert done.code == code, f"exit {done.code}, not {code.name}: {done.err!r}"
    assert done.code in documented_exit_codes()
    lines = done.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def dirs() -> Iterator[dict[str, Path]]:
    """`empty`: nothing at all; `certs`: identities but no stack ever run; files to attack with."""
    base = Path(tempfile.mkdtemp(prefix="tradeops-hostile-"))
    certs = base / "certs-only"
    assert tradeops("certs", "init", "--data-dir", certs).code == 0
    (base / "huge.bin").write_bytes(os.urandom(3_000_000))
    (base / "binary.bin").write_bytes(bytes(range(256)) * 4)
    corrupt = base / "corrupt"
    assert tradeops("certs", "init", "--data-dir", corrupt).code == 0
    (corrupt / "run").mkdir()
    (corrupt / "run" / "stack.json").write_bytes(b"\x00\xff{not json")
    yield {"empty": base / "empty", "certs": certs, "corrupt": corrupt, "files": base}
    shutil.rmtree(base, ignore_errors=True)


HUGE_REASON = "x" * 100_000

# (arguments, data dir, exit code, words the line names); {dir} and {files} are filled in.
WITHOUT_A_STACK: list[tuple[list[str], str, ExitCode, tuple[str, ...]]] = [
    (["intent", "show", "not-a-uuid"], "empty", ExitCode.USAGE, ("not an intent id",)),
    (["intent", "show", "9" * 40], "certs", ExitCode.USAGE, ("not an intent id",)),
    (["intent", "show", NO_SUCH_INTENT], "empty", ExitCode.SETUP, ("ca.pem", "--data-dir")),
    (["audit", "trail", "'; DROP TABLE--"], "certs", ExitCode.USAGE, ("not an intent id",)),
    (["audit", "trail", NO_SUCH_INTENT], "empty", ExitCode.SETUP, ("certs init",)),
    (["audit", "trail", NO_SUCH_INTENT], "certs", ExitCode.UNREACHABLE, ("no stack has run",)),
    (["audit", "verify", "--no-postgres"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["intent", "submit", "DOGE-USD", "buy", "1"], "empty", ExitCode.USAGE, ("tradable: AAPL",)),
    (["intent", "submit", "aapl", "BUY", "1"], "certs", ExitCode.UNREACHABLE, ("up --data-dir",)),
    (["intent", "submit", "AAPL", "hold", "1"], "empty", ExitCode.USAGE, ("side",)),
    (["intent", "submit", "AAPL", "buy", "--", "-5"], "empty", ExitCode.USAGE, ("quantity",)),
    (["intent", "submit", "AAPL", "buy", "1e999999"], "empty", ExitCode.USAGE, ("quantity",)),
    (["intent", "submit", "AAPL", "buy", "1", "--account", "x" * 5000], "empty",
     ExitCode.USAGE, ("account",)),
    (["intent", "submit", "AAPL", "buy", "1", "--rationale", HUGE_REASON], "empty",
     ExitCode.USAGE, ("rationale",)),
    (["intent", "submit", "AAPL", "buy", "1", "--id", "not-a-uuid"], "empty",
     ExitCode.USAGE, ("intent_id",)),
    (["intent", "list", "--since", "yesterday"], "certs", ExitCode.USAGE, ("time",)),
    (["intent", "list", "--limit", "0"], "certs", ExitCode.USAGE, ("--limit",)),
    (["intent", "list"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["intent", "watch"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["dlq", "show", "9" * 30], "certs", ExitCode.USAGE, ("ID",)),
    (["dlq", "show", "abc"], "certs", ExitCode.USAGE, ("ID",)),
    (["dlq", "retry", "1", "--payload", "{files}/huge.bin"], "certs", ExitCode.USAGE,
     ("3,000,000 bytes",)),
    (["dlq", "retry", "1", "--payload", "/dev/zero"], "certs", ExitCode.USAGE, ("unbounded",)),
    (["dlq", "retry", "1", "--payload", "{files}/nonesuch"], "certs", ExitCode.USAGE,
     ("does not exist",)),
    (["dlq", "retry", "1", "--payload", "{files}/binary.bin"], "certs", ExitCode.UNREACHABLE,
     ("cannot reach",)),
    (["dlq", "list"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["dlq", "purge", "--before", "1h", "--yes"], "certs", ExitCode.UNREACHABLE, ("reach",)),
    (["kill", "--reason", HUGE_REASON], "certs", ExitCode.USAGE, ("reason",)),
    (["kill", "--reason", "drill"], "empty", ExitCode.SETUP, ("signing-key", "certs init")),
    (["resume", "--reason", "drill"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["reduce", "--reason", "drill"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["kill", "--reason", ""], "certs", ExitCode.USAGE, ("--reason must say why",)),
    (["resume", "--reason", " \t "], "certs", ExitCode.USAGE, ("--reason must say why",)),
    (["resume"], "certs", ExitCode.USAGE, ("--reason",)),
    (["positions"], "empty", ExitCode.USAGE, ("no database",)),
    (["streams"], "certs", ExitCode.UNREACHABLE, ("cannot reach",)),
    (["logs", "../../etc/passwd"], "empty", ExitCode.USAGE, ("no log named",)),
    (["certs", "revoke", "nobody"], "certs", ExitCode.NOT_FOUND, ("no identity certificate",)),
    (["agent", "run", "nobody"], "empty", ExitCode.USAGE, ("name",)),
    (["contracts", "export", "/proc/no/such/dir"], "empty", ExitCode.SETUP, ("/proc/no",)),
    (["nats", "config", "--out", "/proc/no/such.conf"], "empty", ExitCode.SETUP, ("/proc/no",)),
    (["no-such-command"], "empty", ExitCode.USAGE, ("No such command",)),
    (["intent", "show", NO_SUCH_INTENT, "--bogus"], "empty", ExitCode.USAGE, ("--bogus",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "where", "code", "words"),
    WITHOUT_A_STACK,
    ids=[f"{' '.join(a)[:40]}@{w}" for a, w, _, _ in WITHOUT_A_STACK],
)
def test_without_a_stack_each_command_refuses_in_one_line_with_its_documented_code(
    dirs: dict[str, Path], args: list[str], where: str, code: ExitCode, words: tuple[str, ...]
) -> None:
    argv = [a.replace("{files}", str(dirs["files"])) for a in args]
    if argv[0] not in ("contracts", "nats", "no-such-command"):
        at = argv.index("--") if "--" in argv else len(argv)
        argv[at:at] = ["--data-dir", str(dirs[where])]

    line = assert_refused(tradeops(*argv), code, *words)

    assert len(line) <= 410  # an oversized input is not echoed whole


@pytest.mark.parametrize(
    "args",
    [["status"], ["intent", "show", NO_SUCH_INTENT], ["audit", "trail", NO_SUCH_INTENT],
     ["dlq", "list"], ["streams"], ["kill", "--reason", "drill"], ["provision"]],
    ids=lambda a: " ".join(a[:2]),
)  # fmt: skip
def test_a_corrupt_run_file_is_named_and_exits_setup(
    dirs: dict[str, Path], args: list[str]
) -> None:
    done = tradeops(*args, "--data-dir", dirs["corrupt"])

    assert_refused(done, ExitCode.SETUP, "stack.json")


def test_a_data_dir_with_no_stack_has_no_status_and_nothing_to_stop(dirs: dict[str, Path]) -> None:
    status = tradeops("status", "--data-dir", dirs["empty"])
    down = tradeops("down", "--data-dir", dirs["empty"])

    assert status.code == ExitCode.NOT_FOUND and "Traceback" not in status.err
    assert down.code == ExitCode.OK and "no stack running" in down.out


# -- against a running stack ----------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-hostile-stack-"))
    try:
        async with running_stack(base / "stack") as running:
            await running.wait_ready(180)
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _on(stack: EmbeddedStack, *args: str, timeout_s: float = 60.0) -> Done:
    return tradeops(*args, "--data-dir", str(stack.settings.data_dir), timeout_s=timeout_s)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_ids_that_exist_nowhere_are_not_found(stack: EmbeddedStack) -> None:
    show = _on(stack, "intent", "show", str(uuid.uuid4()))
    trail = _on(stack, "audit", "trail", str(uuid.uuid4()))

    assert show.code == trail.code == ExitCode.NOT_FOUND
    assert "nothing stored" in show.out and not show.err
    assert "Traceback" not in show.err + trail.err
    assert_refused(_on(stack, "dlq", "show", "9223372036854775807"), ExitCode.NOT_FOUND)
    assert_refused(_on(stack, "dlq", "retry", "999999999"), ExitCode.NOT_FOUND)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_hostile_input_to_a_running_stack_is_refused_before_anything_is_sent(
    stack: EmbeddedStack,
) -> None:
    symbol = _on(stack, "intent", "submit", "DOGE-USD", "buy", "1")
    reason = _on(stack, "kill", "--reason", HUGE_REASON)
    binary = _on(stack, "dlq", "retry", "1", "--payload", "/dev/zero")
    second = _on(stack, "up")

    assert_refused(symbol, ExitCode.USAGE, "unknown symbol DOGE-USD", "tradable:")
    assert_refused(reason, ExitCode.USAGE, "reason")
    assert_refused(binary, ExitCode.USAGE, "unbounded")
    assert_refused(second, ExitCode.PROBLEMS, "already running", "--data-dir")
    status = _on(stack, "status", "--json")
    assert status.code == 0 and '"halted"' not in status.out


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_submit_wait_exits_with_the_outcome(stack: EmbeddedStack) -> None:
    filled = _on(stack, "intent", "submit", "btc-usd", "BUY", "0.01", "--wait", "--timeout", "60")
    rejected = _on(
        stack, "intent", "submit", "BTC-USD", "buy", "999999", "--wait", "--timeout", "60"
    )

    assert filled.code == ExitCode.FILLED, filled.err
    assert rejected.code == ExitCode.REJECTED, rejected.err
    assert not filled.err and not rejected.err  # no TLS-close noise either
