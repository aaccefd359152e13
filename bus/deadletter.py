"""Dead letters: the original bytes and the error, on `dlq.<agent>`."""

from __future__ import annotations

import base64
import json
import uuid

from pydantic import BaseModel, ConfigDict

from bus.publisher import Emit
from contracts import DeadLetter, Identity, derive_event_id
from contracts.subjects import dead_letters


class MaxDeliveriesAdvisory(BaseModel):
    """The server's `io.nats.jetstream.advisory.v1.max_deliver` advisory (fields we use)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


def intent_id_hint(data: bytes) -> uuid.UUID | None:
    """Best effort: the `intent_id` of a payload that failed validation, if it has a valid one."""
    try:
        body = json.loads(data)
        return uuid.UUID(str(body["intent_id"])) if isinstance(body, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def dead_letter(
    *,
    agent: Identity,
    reason: str,
    error: str,
    subject: str,
    headers: dict[str, str] | None,
    data: bytes,
    stream: str,
    stream_seq: int,
    delivery_count: int,
    intent_id: uuid.UUID | None = None,
) -> Emit:
    """Build the dead letter of one message; its id is fixed by (stream, sequence, reason)."""
    event = DeadLetter(
        event_id=derive_event_id(f"{stream}:{stream_seq}", f"dead_letter.{reason}"),
        producer=agent,
        agent=agent,
        reason=reason,
        error=error[:4000],
        original_subject=subject,
        original_headers=dict(headers or {}),
        original_data_b64=base64.b64encode(data).decode(),
        stream=stream,
        stream_seq=stream_seq,
        delivery_count=delivery_count,
        intent_id=intent_id or intent_id_hint(data),
    )
    return Emit(dead_letters(agent), event)
