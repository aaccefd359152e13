"""`tradeops kill | resume | reduce`: the desk-wide trading state (the kill switch)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from pydantic import ValidationError

from agents.settings import load_settings
from contracts import Identity, TradingState, TradingStateChanged
from ops.cli.errors import fail, validation_message
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog
from ops.client import connected, load_signer
from ops.control import set_trading_state

control_app = typer.Typer()

EPILOG = exit_codes_epilog(0, 2, 4, 5)


def _flip(data_dir: DataDir, state: TradingState, reason: str) -> None:
    if not reason.strip():
        fail("--reason must say why (it is recorded with the change)", ExitCode.USAGE)
    try:  # the record is checked before anything connects: an oversized reason is a usage error
        TradingStateChanged(
            event_id=uuid.uuid4(),
            producer=Identity.OPS,
            state=state,
            reason=reason,
            requested_by=str(Identity.OPS),
        )
    except ValidationError as exc:
        fail(validation_message(exc, "trading state change"), ExitCode.USAGE)
    settings = load_settings(data_dir)
    signer = load_signer(settings, Identity.OPS)

    async def go() -> int:
        async with connected(settings, Identity.OPS) as nc:
            ack = await set_trading_state(nc, signer, state, reason)
            return int(ack.seq)

    seq = asyncio.run(go())
    typer.echo(f"trading state -> {state} (CONTROL #{seq})")


@control_app.command(epilog=EPILOG)
def kill(
    reason: Annotated[str, typer.Option(help="Why trading stops (recorded; required).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Halt all trading: nothing is approved or executed until `tradeops resume`."""
    _flip(data_dir, TradingState.HALTED, reason)


@control_app.command(epilog=EPILOG)
def resume(
    reason: Annotated[str, typer.Option(help="Why trading resumes (recorded; required).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Resume normal trading."""
    _flip(data_dir, TradingState.ACTIVE, reason)


@control_app.command(epilog=EPILOG)
def reduce(
    reason: Annotated[
        str, typer.Option(help="Why only reducing orders are allowed (recorded; required).")
    ],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Allow only orders that reduce an existing position."""
    _flip(data_dir, TradingState.REDUCING, reason)
