"""The envelope every event carries, and deterministic event ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.types import Identity

# Namespace for ids derived from (intent id, event kind): a redelivered message rebuilds the same
# event id, so a retried publish is de-duplicated by the server (`Nats-Msg-Id`).
EVENT_NAMESPACE = uuid.UUID("6f1c9a52-1d8e-4f1e-9c4e-7d1b2f0a9e31")


def derive_event_id(correlation: uuid.UUID | str, kind: str) -> uuid.UUID:
    """Return the deterministic id of the `kind` event for one correlation id."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{correlation}:{kind}")


SUBMISSION_REF_BASE = uuid.UUID("00000000-0000-8000-8000-000000000000")
"""The public names of submissions: this UUID (version 8) plus the stream sequence."""
_SEQ_BITS = 62  # the bits under a version 8 UUID's variant


def submission_ref(submission_seq: int) -> uuid.UUID:
    """Return the public name of the submission at `submission_seq` in SUBMISSIONS.

    A submission without an `intent_id` names no intent. Until the ingestor accepts it (under an
    id only it can compute, `agents.ingestor.ids`), it goes by this name, readable from anything
    that knows its sequence: the dead letter of a refused one is `dlq.ingestor.<ref>`. For
    SUBMISSIONS #42 it is `00000000-0000-8000-8000-00000000002a`. The ingestor refuses these ids
    as a client's `intent_id` (`is_submission_ref`), so no client can claim one.
    """
    if not 0 <= submission_seq < 1 << _SEQ_BITS:
        raise ValueError(f"stream sequence {submission_seq} out of range")
    return uuid.UUID(int=SUBMISSION_REF_BASE.int | submission_seq)


def is_submission_ref(value: uuid.UUID) -> bool:
    """True when `value` is a submission's public name (`submission_ref`)."""
    return value.int >> _SEQ_BITS == SUBMISSION_REF_BASE.int >> _SEQ_BITS


def utc_now() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every wire model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Envelope(Message):
    """Fields every event carries."""

    kind: ClassVar[str] = "event"

    event_id: uuid.UUID
    """Unique id of this event; derived from (intent id, kind) where an intent exists."""
    causation_id: uuid.UUID | None = None
    """The event that caused this one (None for an origin such as a tick or a submission)."""
    ts: AwareDatetime = Field(default_factory=utc_now)
    """When the producer created the event (UTC)."""
    producer: Identity
    """The identity that produced and signed the event."""


class IntentEvent(Envelope):
    """An event in the life of one trade intent."""

    intent_id: uuid.UUID
    """The correlation id: the intent this event belongs to."""

    @classmethod
    def derive(cls, *, intent_id: uuid.UUID, producer: Identity, **fields: object) -> Self:
        """Build the event with its deterministic id for (intent id, kind)."""
        return cls(
            event_id=derive_event_id(intent_id, cls.kind),
            intent_id=intent_id,
            producer=producer,
            **fields,
        )
