"""Records of operator actions on dead letters, signed by ops and stored on the DLQ stream.

`dlq.retried.<intent id>` (`DeadLetterRetried`: what was re-published where, with the SHA-256 of
the original and of the published bytes) and `dlq.purged` (`DeadLettersPurged`: which dead
letters were removed). The audit reads them: a retried dead letter is no longer an intent's
terminal outcome, and an ops-signed repair is trusted only when its record names its bytes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from contracts.base import Envelope, Message
from contracts.types import Identity


class DeadLetterRetried(Envelope):
    """Ops re-published a dead letter's message. Subject `dlq.retried.<intent id or none>`."""

    kind: ClassVar[str] = "dead_letter.retried"

    dlq_seq: int
    """The dead letter retried (its DLQ stream sequence)."""
    agent: Identity
    """The agent that had dead-lettered the message."""
    reason: str
    """The dead letter's reason code."""
    intent_id: uuid.UUID | None = None
    """The intent of the re-published bytes, when they name one."""
    original_subject: str
    """Where the message was, and is again, published."""
    original_stream: str
    """The stream the dead-lettered message was stored in."""
    original_stream_seq: int
    """Its sequence there."""
    published_stream: str
    """Where the re-published message is stored."""
    published_seq: int
    """Its new sequence there."""
    msg_id: str
    """Its fresh `Nats-Msg-Id`."""
    original_sha256: str
    """SHA-256 of the dead-lettered bytes."""
    payload_sha256: str
    """SHA-256 of the re-published bytes (differs from the original for a repair)."""
    repaired: bool
    """True when the operator supplied new bytes (`--payload`)."""
    requested_by: Annotated[str, Field(max_length=200)] = ""
    """Who asked."""


class PurgedLetter(Message):
    """One dead letter a purge removed."""

    dlq_seq: int
    agent: Identity
    reason: str
    intent_id: uuid.UUID | None = None
    original_subject: str
    original_stream: str
    original_stream_seq: int


class DeadLettersPurged(Envelope):
    """Ops removed dead letters from the DLQ stream. Subject `dlq.purged`."""

    kind: ClassVar[str] = "dead_letter.purged"

    before: AwareDatetime
    """Dead letters stored before this time were removed."""
    below_seq: int
    """Every removed dead letter's DLQ sequence is below this one."""
    purged: int
    """How many the purge removed in all."""
    part: int = 1
    """This record's number, when the list is split over several records."""
    parts: int = 1
    """How many records the purge wrote."""
    letters: tuple[PurgedLetter, ...] = ()
    """The removed dead letters (this record's share)."""
    requested_by: Annotated[str, Field(max_length=200)] = ""
    """Who asked."""
