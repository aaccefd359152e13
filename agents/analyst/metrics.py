"""Prometheus metrics of the analyst (one process = one agent, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLS = Counter(
    "tradeops_analyst_calls_total",
    "Reviews asked of the model by outcome: ok, timeout, error, invalid_output, skipped.",
    ["provider", "outcome"],
)
DEGRADED = Counter(
    "tradeops_analyst_degraded_total",
    "Analyses the offline reviewer produced because the configured model failed.",
    ["reason"],
)
INJECTIONS = Counter(
    "tradeops_analyst_injection_flagged_total",
    "Intents whose free text tried to instruct the reviewer.",
)
SECONDS = Histogram(
    "tradeops_analyst_seconds",
    "Time of one analyst graph stage (retrieve, assess, guard) over one fetched batch.",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40),
)
TOKENS = Counter(
    "tradeops_analyst_tokens_total",
    "Tokens used by the configured model, from its usage metadata.",
    ["provider", "kind"],
)
