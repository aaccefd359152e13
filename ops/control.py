"""Flip the desk-wide trading state: `control.kill` / `resume` / `reduce` (ops only)."""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from bus import Emit, Publisher, Signer
from contracts import Identity, TradingState, TradingStateChanged
from contracts import subjects as s

SUBJECT_OF = {
    TradingState.HALTED: s.CONTROL_KILL,
    TradingState.ACTIVE: s.CONTROL_RESUME,
    TradingState.REDUCING: s.CONTROL_REDUCE,
}


async def set_trading_state(
    nc: NATS, signer: Signer, state: TradingState, reason: str, requested_by: str | None = None
) -> PubAck:
    """Publish the change as ops (signed, stored in CONTROL); return the publish ack.

    `reason` must say why (agents ignore a resume or reduce without one: `contracts.control`);
    `requested_by` defaults to the signing identity, the one thing about the sender that is
    proven (a login name would be whatever the caller's machine says)."""
    if not reason.strip():
        raise ValueError("a trading state change needs a reason")
    event = TradingStateChanged(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        state=state,
        reason=reason,
        requested_by=requested_by or str(signer.identity),
    )
    publisher = Publisher(nc.jetstream(), signer)
    future = await publisher.start(Emit(SUBJECT_OF[state], event))
    return await future
