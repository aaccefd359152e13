"""Prometheus metrics of the analyst (one process = one agent, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter(
    "tradeops_analyst_calls_total",
    "Reviews asked of the model by outcome: ok, timeout, error, throttled (429 after every "
    "retry), invalid_output, skipped.",
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
    "Time of one analyst graph stage: retrieve, assess and guard over one fetched batch; review "
    "for one intent with a remote model (waiting for a call slot, retries and the guard included).",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80),
)
TOKENS = Counter(
    "tradeops_analyst_tokens_total",
    "Tokens used by the configured model, from its usage metadata.",
    ["provider", "model", "kind"],
)
COST = Counter(
    "tradeops_analyst_cost_usd_total",
    "Estimated cost of the model's tokens at the configured [analyst] prices, in US dollars.",
    ["provider", "model"],
)
THROTTLED = Counter(
    "tradeops_analyst_throttled_total",
    "Model calls the provider throttled (HTTP 429); retried after its Retry-After, never "
    "counted as failures.",
    ["provider"],
)
BUDGET_USED = Gauge(
    "tradeops_analyst_budget_used_tokens",
    "Tokens counted against today's (UTC) token budget.",
)
BUDGET = Gauge(
    "tradeops_analyst_budget_tokens",
    "The daily token budget ([analyst] max_tokens_per_day).",
)
