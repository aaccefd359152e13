"""Prometheus metrics of the bus layer (one process = one agent, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# `subject` is the consumer's filter subject, never a message's own: a message subject names its
# intent, and one series per intent would grow every agent's memory and /metrics without bound.
PROCESSED = Counter(
    "tradeops_messages_processed_total",
    "Messages handled and acknowledged, by the consumer's filter subject.",
    ["agent", "subject"],
)
FAILED = Counter(
    "tradeops_messages_failed_total",
    "Handler failures that were nak'ed for a delayed retry, by the consumer's filter subject.",
    ["agent", "subject"],
)
DEAD_LETTERED = Counter(
    "tradeops_messages_dead_lettered_total",
    "Messages moved to the dead-letter stream.",
    ["agent", "reason"],
)
HANDLER_SECONDS = Histogram(
    "tradeops_handler_seconds",
    "Time to handle one fetched batch, publish its outputs and ack it.",
    ["agent"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PERMISSION_VIOLATIONS = Counter(
    "tradeops_permission_violations_total",
    "Operations the server refused for this identity.",
    ["identity"],
)
CONNECTION_EVENTS = Counter(
    "tradeops_connection_events_total",
    "Disconnects and reconnects to NATS.",
    ["identity", "event"],
)
TRADING_STATE = Gauge(
    "tradeops_trading_state",
    "1 for the agent's current trading state, 0 for the others.",
    ["agent", "state"],
)
