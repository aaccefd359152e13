"""A client asks where its intent is: `intent.outcome` (core request/reply, answered by ops).

A client may not read any stream (they carry every client's flow; the server cannot scope a read
to one intent, and a direct get accepts wildcard subjects). So it asks: the request body is an
`OutcomeQuery`, the reply an `OutcomeAnswer`. The answer comes from the operators' one trail
reader (subjects and signatures only), so a client sees exactly what `tradeops intent show` says.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from contracts.base import Message
from contracts.kinds import Outcome

MAX_QUERY_BYTES = 1024
"""A larger request is answered with an error, unread."""


class OutcomeQuery(Message):
    """Request body on `intent.outcome`."""

    intent_id: Annotated[str, Field(min_length=1, max_length=100)]
    """The intent's id, in any spelling of a UUID the ingestor accepts."""


class OutcomeAnswer(Message):
    """Reply to an `OutcomeQuery`."""

    intent_id: str | None = None
    """The canonical id asked about (None when the query named no valid id)."""
    outcome: Outcome | None = None
    """`filled`, `rejected`, `dead_lettered`, `handed_over`, `pending`, or `unknown` (nothing
    stored under the id yet: ask again after the publish ack)."""
    terminal: bool = False
    """True when the outcome is final."""
    reasons: tuple[str, ...] = ()
    """Reason codes of the terminal event (e.g. `max_notional`, `halted`, `invalid_payload`)."""
    error: str | None = None
    """Why the query could not be answered (`invalid_query`, `busy`, `unavailable`)."""
