"""Prometheus metrics of the executor."""

from __future__ import annotations

from prometheus_client import Counter

ORDERS = Counter(
    "tradeops_executor_orders_total",
    "Approved intents the executor finished, by outcome (filled, or the rejection reason).",
    ["outcome"],
)
