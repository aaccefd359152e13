"""What a handler sees and answers, and the checks on an input before it is handled.

The consumer runtime (`bus.runtime`) decodes each delivery into a `Delivery`, checks its
provenance (`provenance`: a signer may act only on the subjects it publishes) and hands batches
to the agent's `BatchHandler`, which answers with an `Outcome` per delivery. An input that is
invalid or refused becomes its dead letter (`dead_letter_of`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.aio.msg import Msg

from bus.deadletter import dead_letter
from bus.errors import Rejected
from bus.publisher import Emit
from bus.pull import stored_headers
from bus.signing import SignatureStatus, Verifier
from contracts import Identity, InvalidMessage
from contracts.kinds import owners_of, unsigned_allowed

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """One validated message and where it came from."""

    value: T
    subject: str
    stream_seq: int
    num_delivered: int
    msg: Msg


def check_producer(value: object, signer: str | None) -> None:
    """An event naming another producer than its signer is not believed (ops repairs aside)."""
    producer = getattr(value, "producer", None)
    if signer in (None, Identity.OPS) or producer is None or str(producer) == signer:
        return
    raise Rejected("provenance", f"producer field says {producer}, signed by {signer}")


Outcome = Sequence[Emit] | BaseException
"""A handler's answer for one delivery: the events to publish, or the error it hit."""
Ready = Sequence[tuple[int, Outcome]]
"""Outcomes that are ready, each with the index of its delivery in the handled batch."""
BatchHandler = Callable[
    [Sequence[Delivery[T]]], Awaitable[Sequence[Outcome]] | AsyncIterator[Ready]
]
"""Answers a batch with its outcomes in delivery order, or streams them as they are ready."""
Decoder = Callable[[Msg], T]


@dataclass(frozen=True)
class Pacing:
    """How much one consumer works on at once; the default is one batch at a time."""

    max_batches: int = 1
    """Fetched batches handled at once. Above 1, the next batch is fetched (and its deliveries
    settled as they are ready) while earlier batches still wait for slow outcomes."""
    capacity: Callable[[], int] | None = None
    """Deliveries the handler can hold now (flow control): no fetch while that many are in hand,
    and a fetch asks the server for at most the difference."""
    heartbeat: bool = False
    """Send an in-progress ack every ack_wait/3 for each delivery still being handled."""
    max_hold_s: float | None = None
    """Stop heartbeating a delivery held this long: a stuck handler's messages are redelivered."""


def one_by_one(handle: Callable[[Delivery[T]], Awaitable[Sequence[Emit]]]) -> BatchHandler[T]:
    """Adapt a per-message handler into a batch handler that isolates each message's error."""

    async def batch(items: Sequence[Delivery[T]]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append(await handle(item))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    return batch


@dataclass
class RuntimeStats:
    """Counters the agent's /status endpoint reports."""

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    in_progress_sent: int = 0
    """In-progress acks sent for deliveries still being handled."""
    last_error: str | None = None


def provenance(verifier: Verifier | None, msg: Msg) -> str | None:
    """The input's verified signer; `Rejected("provenance")` when it may not have sent it.

    Only an identity that publishes a subject (or ops, which repairs dead letters) is believed
    on it: a compromised agent's key signs only its own subjects' events. None when inputs are
    not verified (`verifier` None) or the subject may be unsigned."""
    if verifier is None or unsigned_allowed(msg.subject):
        return None
    status, signer = verifier.check(msg.subject, msg.data, msg.headers)
    if status is not SignatureStatus.VALID:
        raise Rejected("provenance", f"signature {status} (signer {signer!r}) on {msg.subject}")
    if signer != Identity.OPS and signer not in owners_of(msg.subject):
        named = ", ".join(sorted(owners_of(msg.subject))) or "nobody"
        raise Rejected("provenance", f"signed by {signer}, but {msg.subject} is {named}'s")
    return signer


def dead_letter_of(agent: Identity, msg: Msg, exc: InvalidMessage | Rejected) -> Emit:
    """The dead letter of a delivery `agent` refuses, naming where it is stored."""
    meta = msg.metadata
    return dead_letter(
        agent=agent,
        reason=exc.code,
        error=str(exc),
        subject=msg.subject,
        headers=stored_headers(msg.headers),
        data=msg.data,
        stream=meta.stream,
        stream_seq=meta.sequence.stream,
        delivery_count=meta.num_delivered,
    )
