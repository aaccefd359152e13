"""Prometheus metrics of the ingestor."""

from __future__ import annotations

from prometheus_client import Counter

DEDUPLICATED = Counter(
    "tradeops_intents_deduplicated_total", "Submissions recognised as an already-seen intent."
)
