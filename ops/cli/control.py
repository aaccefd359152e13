"""`tradeops kill | resume | reduce` and `tradeops demo`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agents.settings import load_settings
from bus import Credentials, Signer
from contracts import Identity, TradingState
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.client import connected
from ops.control import set_trading_state
from ops.demo import PositionsRenderer, run_demo


def _flip(data_dir: DataDir, state: TradingState, reason: str) -> None:
    settings = load_settings(data_dir)
    signer = Signer.from_file(
        Identity.OPS, Credentials(Identity.OPS, settings.certs_dir).signing_key_file
    )

    async def go() -> int:
        async with connected(settings, Identity.OPS) as nc:
            ack = await set_trading_state(nc, signer, state, reason)
            return int(ack.seq)

    seq = asyncio.run(go())
    typer.echo(f"trading state -> {state} (CONTROL #{seq})")


def register(app: typer.Typer, positions: PositionsRenderer | None = None) -> None:
    @app.command()
    def kill(
        reason: Annotated[str, typer.Option(help="Why trading stops (recorded).")],
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Halt all trading: nothing is approved or executed until `tradeops resume`."""
        _flip(data_dir, TradingState.HALTED, reason)

    @app.command()
    def resume(
        reason: Annotated[str, typer.Option(help="Why trading resumes.")] = "",
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Resume normal trading."""
        _flip(data_dir, TradingState.ACTIVE, reason)

    @app.command()
    def reduce(
        reason: Annotated[str, typer.Option(help="Why only reducing orders are allowed.")] = "",
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Allow only orders that reduce an existing position."""
        _flip(data_dir, TradingState.REDUCING, reason)

    @app.command()
    def demo(
        data_dir: Annotated[
            str | None,
            typer.Option("--data-dir", help="Keep the demo stack here (default: a temporary dir)."),
        ] = None,
    ) -> None:
        """Start the embedded stack, run a scripted scenario, print chains and positions, stop."""
        code = asyncio.run(run_demo(Console(), Path(data_dir) if data_dir else None, positions))
        raise typer.Exit(code)
