"""The one rule for the desk-wide trading state, applied by the agents, `status` and the audit.

- The order is the CONTROL stream's sequence, never a timestamp a publisher wrote: an operator
  whose clock runs ahead cannot hide a later kill behind an earlier message.
- The subject decides what a message does. A message on `control.kill` halts, whatever its body
  and whether or not it is signed: only identities the server allows may publish there, and an
  emergency stop must work from any NATS client. `control.resume` and `control.reduce` take
  effect only when well-formed, signed by ops and given a reason: a resume is deliberate.
- The newest message (by sequence) that takes effect decides; one that does not is ignored.
Pure; the signature is checked by the caller (`bus.trading_state`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts import subjects as s
from contracts.errors import InvalidMessage, parse
from contracts.events import TradingStateChanged
from contracts.types import TradingState

STATE_OF_SUBJECT: dict[str, TradingState] = {
    s.CONTROL_KILL: TradingState.HALTED,
    s.CONTROL_RESUME: TradingState.ACTIVE,
    s.CONTROL_REDUCE: TradingState.REDUCING,
}


@dataclass(frozen=True)
class ControlMessage:
    """One stored control message, as the rule needs it."""

    seq: int
    subject: str
    data: bytes
    signed_by_ops: bool
    """Its signature verifies and its signer is ops."""


def effect(msg: ControlMessage) -> TradingState | None:
    """The state this message sets, or None when it takes no effect (and why is logged by the
    caller with `refusal`)."""
    return STATE_OF_SUBJECT[msg.subject] if refusal(msg) is None else None


def refusal(msg: ControlMessage) -> str | None:
    """Why the message takes no effect, or None when it does."""
    wanted = STATE_OF_SUBJECT.get(msg.subject)
    if wanted is None:
        return f"{msg.subject} is not a control subject"
    if wanted is TradingState.HALTED:
        return None
    if not msg.signed_by_ops:
        return f"{msg.subject} needs the ops signature"
    try:
        change = parse(TradingStateChanged, msg.data)
    except InvalidMessage as exc:
        return f"{msg.subject} is not a well-formed request: {exc}"
    if change.state is not wanted:
        return f"{msg.subject} says {change.state}: the subject and the body disagree"
    if not change.reason.strip():
        return f"{msg.subject} needs a reason"
    return None


def decide(messages: Iterable[ControlMessage]) -> tuple[TradingState, int] | None:
    """The state set by the newest message that takes effect, with its sequence; None when no
    message takes effect (the desk is active)."""
    for msg in sorted(messages, key=lambda m: m.seq, reverse=True):
        state = effect(msg)
        if state is not None:
            return state, msg.seq
    return None
