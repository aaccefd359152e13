"""What the configured model has cost: tokens and estimated US dollars per model.

Tokens come from the provider's usage metadata; the cost is tokens times the model's price in
`[analyst] prices` (a served name such as `gpt-4o-mini-2024-07-18` takes the price of the
longest configured name it starts with). Totals run since the analyst started, like the
Prometheus counters; the daily budget is `health.ProviderHealth`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agents.analyst.config import ModelPrice

THOUSAND = Decimal(1000)


def price_of(prices: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
    """Return the price of `model`: its own, else the longest configured prefix's, else None."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    return prices[max(prefixes, key=len)] if prefixes else None


def cost_usd(price: ModelPrice, input_tokens: int, output_tokens: int) -> Decimal:
    """Return the estimated cost of one call."""
    return (
        price.input_per_1k_usd * input_tokens + price.output_per_1k_usd * output_tokens
    ) / THOUSAND


@dataclass
class ModelUsage:
    """Tokens and cost of one model since start."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    """None while the model has no configured price."""


@dataclass
class Spend:
    """Usage per model (not thread-safe: one event loop)."""

    prices: Mapping[str, ModelPrice]
    models: dict[str, ModelUsage] = field(default_factory=dict)

    def record(self, model: str, input_tokens: int, output_tokens: int) -> Decimal | None:
        """Count one answered call of `model`; return its estimated cost (None: no price)."""
        usage = self.models.setdefault(model, ModelUsage())
        usage.calls += 1
        usage.input_tokens += max(0, input_tokens)
        usage.output_tokens += max(0, output_tokens)
        price = price_of(self.prices, model)
        if price is None:
            return None
        cost = cost_usd(price, max(0, input_tokens), max(0, output_tokens))
        usage.cost_usd = (usage.cost_usd or Decimal(0)) + cost
        return cost

    def snapshot(self) -> dict[str, Any]:
        """Return what `/status` shows: per model, and the total of the priced ones."""
        priced = [u.cost_usd for u in self.models.values() if u.cost_usd is not None]
        return {
            "models": {
                name: {
                    "calls": u.calls,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "cost_usd": None if u.cost_usd is None else f"{u.cost_usd:.6f}",
                }
                for name, u in sorted(self.models.items())
            },
            "cost_usd": f"{sum(priced, Decimal(0)):.6f}",
        }
