"""`tradeops up | down | status | agent run`."""

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
from typing import Annotated, Any

import typer

from agents.registry import build_agent
from agents.settings import Settings, load_settings
from contracts import Identity
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.stack.embedded import EmbeddedStack, pid_file, state_file
from ops.stack.status import collect_status, pid_alive, render_status


def _settings(data_dir: Path, database_url: str | None = None) -> Settings:
    settings = load_settings(data_dir)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


async def _serve(settings: Settings) -> None:
    stack = EmbeddedStack(settings, progress=lambda m: logging.getLogger("tradeops.up").info(m))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.start()
        typer.echo(f"tradeops up: {len(stack.agents)} agents, NATS {stack.layout.url}", err=True)
        await stop.wait()
    finally:
        await stack.stop()


def _detach(data_dir: Path, database_url: str | None, timeout_s: float) -> None:
    if pid_alive(_read_pid(data_dir)):
        typer.echo(f"a stack is already running in {data_dir}; see `tradeops status`")
        raise typer.Exit(1)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state_file(data_dir).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "ops.cli", "up", "--data-dir", str(data_dir)]
    if database_url:
        argv += ["--database-url", database_url]
    with (logs / "stack.log").open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            typer.echo(f"the stack exited with code {proc.returncode}; see {logs / 'stack.log'}")
            raise typer.Exit(1)
        doc = _read_state(data_dir)
        if doc and doc.get("state") == "running":
            typer.echo(
                f"tradeops up: running in the background (pid {proc.pid}); "
                f"`tradeops status --data-dir {data_dir}` to inspect, `tradeops down` to stop"
            )
            return
        time.sleep(0.2)
    typer.echo(f"the stack did not come up within {timeout_s:.0f}s; see {logs / 'stack.log'}")
    raise typer.Exit(1)


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int(pid_file(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(state_file(data_dir).read_text())
        return doc
    except (OSError, ValueError):
        return None


def register(app: typer.Typer) -> None:
    """Add the stack commands to `app`."""
    agent_app = typer.Typer(
        help="Run one agent (compose and scale-out use this).", no_args_is_help=True
    )
    app.add_typer(agent_app, name="agent")

    @app.command()
    def up(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        database_url: Annotated[
            str | None,
            typer.Option(
                help="Use this Postgres instead of the embedded one.",
                envvar="TRADEOPS_DATABASE_URL",
            ),
        ] = None,
        detach: Annotated[
            bool, typer.Option(help="Run in the background and return when up.")
        ] = False,
        timeout_s: Annotated[
            float, typer.Option("--timeout", help="--detach: seconds to wait.")
        ] = 180.0,
    ) -> None:
        """Start nats-server, Postgres and every agent on this machine."""
        if detach:
            _detach(data_dir, database_url, timeout_s)
            return
        logging.getLogger("tradeops").setLevel(logging.INFO)
        asyncio.run(_serve(_settings(data_dir, database_url)))

    @app.command()
    def down(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        timeout_s: Annotated[float, typer.Option("--timeout")] = 60.0,
    ) -> None:
        """Stop a detached stack: agents drain, then nats-server and Postgres stop."""
        pid = _read_pid(data_dir)
        if not pid_alive(pid):
            typer.echo(f"no stack running in {data_dir}")
            return
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            typer.echo(f"the stack (pid {pid}) did not stop within {timeout_s:.0f}s")
            raise typer.Exit(1)
        typer.echo("tradeops down: stopped")

    @app.command()
    def status(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Show the NATS URL, the database, each component and the trading state."""
        doc = asyncio.run(collect_status(load_settings(data_dir)))
        typer.echo(json.dumps(doc, indent=2) if as_json else render_status(doc))
        if not doc.get("running"):
            raise typer.Exit(3)

    @agent_app.command("run")
    def agent_run(
        name: Annotated[
            Identity, typer.Argument(help="ingestor, analyst, risk, executor or ledger")
        ],
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Run one agent in the foreground with its own identity."""
        logging.getLogger("tradeops").setLevel(logging.INFO)
        agent = build_agent(name, _settings(data_dir))
        asyncio.run(agent.run())
