"""Dead letters: the original bytes and the error, on `dlq.<agent>.<intent id>`.

A submission that names no usable intent id is filed under its public name,
`contracts.base.submission_ref(<its SUBMISSIONS sequence>)`: the ingestor never gave it an intent
id (those only it can compute, and only for what it accepts), and `intent show`, `intent list`
and `audit trail` find it under that name. A client's `intent_id` that is such a name is never
believed (the ingestor refuses it): its dead letter too is filed under its own sequence.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from pydantic import BaseModel, ConfigDict

from bus.publisher import Emit
from contracts import DeadLetter, Identity, derive_event_id
from contracts import subjects as s
from contracts.base import is_submission_ref, submission_ref
from contracts.topology import SUBMISSIONS


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
    """Build the dead letter of one message; its id is fixed by (stream, sequence, reason).

    The original is not copied: it stays stored in `stream` at `stream_seq`, and the dead letter
    names it there with its size and SHA-256 (`tradeops dlq show` and `retry` read it back and
    check the digest). A dead letter so costs a few hundred bytes whatever the original's size,
    and a flood of oversized submissions does not fill DLQ as well as SUBMISSIONS.
    """
    hint = intent_id or intent_id_hint(data)
    if stream == SUBMISSIONS and hint is not None and is_submission_ref(hint):
        hint = None  # a client may not name another submission
    event = DeadLetter(
        event_id=derive_event_id(f"{stream}:{stream_seq}", f"dead_letter.{reason}"),
        producer=agent,
        agent=agent,
        reason=reason,
        error=error[:4000] if len(error) <= 4000 else error[:3800] + " ... " + error[-195:],
        original_subject=subject,
        original_headers=dict(headers or {}),
        original_size=len(data),
        original_sha256=hashlib.sha256(data).hexdigest(),
        stream=stream,
        stream_seq=stream_seq,
        delivery_count=delivery_count,
        intent_id=hint,
    )
    token = hint
    if token is None and stream == SUBMISSIONS:
        token = submission_ref(stream_seq)
    return Emit(s.dead_letter(agent, token), event)
