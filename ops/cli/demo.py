"""`tradeops demo`: the whole pipeline on a throw-away embedded stack, in a scripted scenario."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ops.cli.options import exit_codes_epilog
from ops.cli.positions import read_ledger, render
from ops.demo import run_demo
from ops.stack.signals import until_signalled

demo_app = typer.Typer()


async def _positions_text(database_url: str) -> str:
    return render(await read_ledger(database_url, None))


@demo_app.command(epilog=exit_codes_epilog(0, 1, 4, 5, 128))
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Keep the demo stack here (default: a temporary dir)."),
    ] = None,
) -> None:
    """Start the embedded stack, run a scripted scenario, print chains and positions, stop.

    Ctrl-C, SIGTERM or SIGHUP stop it cleanly: every process it started is stopped and its
    temporary data dir removed. Exits 1 when an intent did not end as the scenario expects."""
    code = asyncio.run(until_signalled(run_demo(Console(), data_dir, _positions_text)))
    raise typer.Exit(code)
