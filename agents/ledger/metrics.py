"""How long an intent takes to reach the ledger, as `tradeops_intent_latency_seconds{stage}`.

Observed by the ledger, once per posting it makes:

- `filled_to_posted`: from the `OrderFilled`'s `ts` (when the executor recorded the fill) to the
  `LedgerPosted`'s `ts` (when the ledger booked it).

Why only that stage: the ledger receives only `OrderFilled`, whose intent carries no timestamps,
and it may read no stream but ORDERS; the time of submission or acceptance is not available to
it. An `accepted_to_posted` stage needs the acceptance time carried on the events (a contract
change). The two timestamps come from two processes' clocks; a negative difference (clock skew)
is recorded as 0. A posting booked on an earlier delivery is not observed again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Histogram

from contracts import LedgerPosted, OrderFilled

FILLED_TO_POSTED = "filled_to_posted"

INTENT_LATENCY = Histogram(
    "tradeops_intent_latency_seconds",
    "Time between two points of an intent's life, by stage (filled_to_posted).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def elapsed_s(start: datetime, end: datetime) -> float:
    """Return the seconds from `start` to `end`, never negative."""
    return max(0.0, (end - start).total_seconds())


def observe_posting(fill: OrderFilled, posted: LedgerPosted) -> float:
    """Observe the `filled_to_posted` latency of one posting; return it in seconds."""
    seconds = elapsed_s(fill.ts, posted.ts)
    INTENT_LATENCY.labels(stage=FILLED_TO_POSTED).observe(seconds)
    return seconds


def observe_postings(
    fills: Sequence[OrderFilled], results: Sequence[object], *, booked_since: datetime
) -> int:
    """Observe the postings that one booking call made; return how many were observed.

    `results` holds, per fill, its `LedgerPosted` or the reason it was not booked (skipped).
    A posting whose `ts` is before `booked_since` was booked on an earlier delivery and is
    skipped, as is a second fill of one intent in the same batch.
    """
    seen: set[uuid.UUID] = set()
    for fill, result in zip(fills, results, strict=True):
        if not isinstance(result, LedgerPosted) or result.ts < booked_since:
            continue
        if result.intent_id in seen:
            continue
        seen.add(result.intent_id)
        observe_posting(fill, result)
    return len(seen)
