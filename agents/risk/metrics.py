"""Prometheus metrics of the risk gate."""

from __future__ import annotations

from prometheus_client import Counter

DECISIONS = Counter(
    "tradeops_risk_decisions_total", "Intents decided by the risk gate.", ["decision"]
)
REJECTIONS = Counter(
    "tradeops_risk_rejections_total",
    "Failing checks of rejected intents (one rejection may count several reasons).",
    ["reason"],
)
