"""Dead letters: the original bytes and the error, on `dlq.<agent>.<intent id>`.

A submission that names no usable intent id is filed under its public name,
`contracts.base.submission_ref(<its SUBMISSIONS sequence>)`: the ingestor never gave it an intent
id (those only it can compute, and only for what it accepts), and `intent show`, `intent list`
and `audit trail` find it under that name. A client's `intent_id` that is such a name is never
believed (the ingestor refuses it): its dead letter too is filed under its own sequence.
"""

from __future__ import annotations

import base64
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


MAX_DEAD_LETTER_BYTES = 256 * 1024


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

    A payload too large to fit in a dead letter under the server's max_payload keeps its first
    MAX_DEAD_LETTER_BYTES; the error says so, with the digest, and the full message stays in
    its stream at `stream_seq`.
    """
    if len(data) > MAX_DEAD_LETTER_BYTES:
        digest = hashlib.sha256(data).hexdigest()
        error = (
            f"{error} [original truncated to {MAX_DEAD_LETTER_BYTES} of {len(data)} bytes, "
            f"sha256 {digest}; the full message is {stream} #{stream_seq}]"
        )
        hint = intent_id or intent_id_hint(data)
        data = data[:MAX_DEAD_LETTER_BYTES]
    else:
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
        original_data_b64=base64.b64encode(data).decode(),
        stream=stream,
        stream_seq=stream_seq,
        delivery_count=delivery_count,
        intent_id=hint,
    )
    token = hint
    if token is None and stream == SUBMISSIONS:
        token = submission_ref(stream_seq)
    return Emit(s.dead_letter(agent, token), event)
