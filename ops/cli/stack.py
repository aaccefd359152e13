"""`tradeops up | down | status` and `tradeops agent run`.

A foreground `up` runs until Ctrl-C, SIGTERM or SIGHUP, then stops every process it started
(agents, nats-server, Postgres). `up --detach` starts that same foreground `up` in the
background and returns only when every agent answers /readyz, or names the ones that do not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from agents.registry import build_agent
from agents.settings import Settings, load_settings
from contracts import Identity
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog, hint
from ops.stack.embedded import EmbeddedStack, check_ports
from ops.stack.signals import Interrupted, until_signalled
from ops.stack.state import clear_state, pid_alive, read_state, running_pid
from ops.stack.status import collect_status, readiness, render_status

log = logging.getLogger("tradeops.up")

stack_app = typer.Typer()
agent_app = typer.Typer(
    help="Run one agent (compose and scale-out use this).", no_args_is_help=True
)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="Use this Postgres instead of the embedded one.", envvar="TRADEOPS_DATABASE_URL"
    ),
]


def _settings(data_dir: Path, database_url: str | None = None) -> Settings:
    settings = load_settings(data_dir)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def _verbose() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("tradeops").setLevel(logging.INFO)


def _say(text: str) -> None:
    typer.echo(text, err=True)


async def _serve(settings: Settings, data_dir: Path, ready_timeout_s: float) -> None:
    stack = EmbeddedStack(settings, progress=log.info)

    async def run() -> None:
        try:
            await stack.start()
            _say(
                f"tradeops up: {len(stack.agents)} agents, NATS {stack.layout.url}; Ctrl-C, "
                f"SIGTERM, SIGHUP or {hint('down', data_dir)} stops them all"
            )
            try:
                await stack.wait_ready(ready_timeout_s)
                _say("tradeops up: every agent is ready")
            except TimeoutError as exc:
                log.warning("%s; see %s", exc, hint("status", data_dir))
            await asyncio.Event().wait()  # until a signal cancels this
        finally:
            await stack.stop()

    await until_signalled(run())


def _refuse_second_stack(data_dir: Path) -> None:
    pid = running_pid(data_dir)
    if pid is not None:
        fail(
            f"a stack is already running in {data_dir} (pid {pid}); see "
            f"{hint('status', data_dir)}, stop it with {hint('down', data_dir)}",
            ExitCode.PROBLEMS,
        )


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _not_ready(data_dir: Path) -> dict[str, list[str]]:
    """Each agent of the running stack that does not answer /readyz 200, with its reasons."""
    state = read_state(data_dir)
    if state is None or state.state != "running":
        return {"stack": ["not running yet"]}
    waiting: dict[str, list[str]] = {}
    for name, comp in state.components.items():
        if name == "nats-server" or comp.health_url is None:
            continue
        ready, reasons = readiness(comp.health_url)
        if not ready:
            waiting[name] = reasons or ["not ready"]
    return waiting


def _detach(data_dir: Path, database_url: str | None, timeout_s: float) -> None:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    clear_state(data_dir)
    argv = [sys.executable, "-m", "ops.cli", "up", "--data-dir", str(data_dir)]
    argv += ["--timeout", str(timeout_s)]
    if database_url:
        argv += ["--database-url", database_url]
    with (logs / "stack.log").open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    waiting: dict[str, list[str]] = {"stack": ["not started"]}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = _last_line(logs / "stack.log").removeprefix("error: ")
            fail(
                f"the stack exited with code {proc.returncode}: {why} (log: {logs / 'stack.log'})",
                ExitCode(proc.returncode) if proc.returncode in (4, 5) else ExitCode.PROBLEMS,
            )
        waiting = _not_ready(data_dir)
        if not waiting:
            typer.echo(
                f"tradeops up: every agent ready, running in the background (pid {proc.pid}); "
                f"{hint('status', data_dir)} to inspect, {hint('down', data_dir)} to stop"
            )
            return
        time.sleep(0.3)
    names = ", ".join(f"{n} ({'; '.join(r)})" for n, r in sorted(waiting.items()))
    fail(
        f"not ready after {timeout_s:g}s: {names}; it keeps starting in the background: "
        f"{hint('status', data_dir)}, {hint('logs', data_dir)}, stop with {hint('down', data_dir)}",
        ExitCode.UNREACHABLE,
    )


@stack_app.command(epilog=exit_codes_epilog(0, 1, 4, 5))
def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: DatabaseUrl = None,
    detach: Annotated[
        bool, typer.Option(help="Run in the background; return when every agent is ready.")
    ] = False,
    timeout_s: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds to wait for every agent to be ready."),
    ] = 180.0,
) -> None:
    """Start nats-server, Postgres and every agent on this machine.

    In the foreground it runs until Ctrl-C, SIGTERM or SIGHUP, then stops everything it started.
    With --detach it returns once every agent answers /readyz, or exits 4 naming those that do
    not after --timeout. A port the settings name already in use exits 5, naming the setting."""
    _refuse_second_stack(data_dir)
    settings = _settings(data_dir, database_url)
    check_ports(settings)
    if detach:
        _detach(data_dir, database_url, timeout_s)
        return
    _verbose()
    try:
        asyncio.run(_serve(settings, data_dir, timeout_s))
    except Interrupted as exc:
        _say(f"tradeops up: {exc}; every process it started has stopped")


@stack_app.command(epilog=exit_codes_epilog(0, 1))
def down(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for it to stop.")
    ] = 60.0,
) -> None:
    """Stop the stack of the data dir: agents drain, then nats-server and Postgres stop."""
    pid = running_pid(data_dir)
    if pid is None:
        typer.echo(f"no stack running in {data_dir}")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        fail(
            f"the stack (pid {pid}) did not stop within {timeout_s:g}s; see "
            f"{hint('logs stack', data_dir)}",
            ExitCode.PROBLEMS,
        )
    typer.echo("tradeops down: stopped")


@stack_app.command(epilog=exit_codes_epilog(0, 3, 5))
def status(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the NATS URL, the database, each component and the trading state.

    Exits 3 when no stack runs in the data dir."""
    doc = asyncio.run(collect_status(load_settings(data_dir)))
    typer.echo(json.dumps(doc, indent=2) if as_json else render_status(doc))
    if not doc.get("running"):
        raise typer.Exit(ExitCode.NOT_FOUND)


@agent_app.command("run", epilog=exit_codes_epilog(0, 5))
def agent_run(
    name: Annotated[Identity, typer.Argument(help="ingestor, analyst, risk, executor or ledger")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run one agent in the foreground with its own identity (reconnects until stopped)."""
    settings = _settings(data_dir)
    try:
        agent = build_agent(name, settings)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    _verbose()
    asyncio.run(agent.run())
