"""`tradeops logs [NAME] [-f] [-n N]`: the embedded stack's process logs."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog, hint
from ops.logs import Follower, log_files, tail

POLL_S = 0.25


logs_app = typer.Typer()


def _chosen(data_dir: Path, name: str | None) -> dict[str, Path]:
    files = log_files(data_dir)
    if name is None:
        present = {n: p for n, p in files.items() if p.exists()}
        if not present:
            fail(
                f"no logs in {data_dir}: has the stack run there? ({hint('up', data_dir)})",
                ExitCode.NOT_FOUND,
            )
        return present
    if name not in files:
        fail(f"no log named {name!r}; known: {', '.join(files)}", ExitCode.USAGE)
    if not files[name].exists():
        fail(
            f"no {name} log yet ({files[name]}); has the stack run in {data_dir}?",
            ExitCode.NOT_FOUND,
        )
    return {name: files[name]}


def _stop_on_sigterm() -> None:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@logs_app.command("logs", epilog=exit_codes_epilog(0, 2, 3))
def logs(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            help="stack, nats-server, postgres or an agent (ingestor, analyst, risk, executor, "
            "ledger); every log when omitted.",
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing lines as they are written.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to show.")
    ] = 50,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The stack's process logs, from the data dir.

    Without NAME: every log there, each line prefixed with its name."""
    files = _chosen(data_dir, name)
    prefix = len(files) > 1
    width = max(len(n) for n in files)

    def show(log: str, text: str) -> None:
        typer.echo(f"{log:<{width}} | {text}" if prefix else text)

    for log, path in files.items():
        for text in tail(path, lines):
            show(log, text)
    if not follow:
        return
    followers = {log: Follower.at_end(path) for log, path in files.items()}
    _stop_on_sigterm()
    try:
        while True:
            for log, follower in followers.items():
                for text in follower.poll():
                    show(log, text)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        return
