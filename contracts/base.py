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


def assigned_intent_id(submission_seq: int) -> uuid.UUID:
    """Return the id the ingestor gives the submission at `submission_seq` when it names none."""
    return uuid.uuid5(EVENT_NAMESPACE, f"SUBMISSIONS:{submission_seq}")


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
