"""Spend: tokens and estimated cost per model at the configured prices."""

from __future__ import annotations

from decimal import Decimal

from agents.analyst.config import AnalystSettings, ModelPrice
from agents.analyst.spend import Spend, price_of

PRICES = {
    "gpt-4o": ModelPrice(input_per_1k_usd=Decimal("0.0025"), output_per_1k_usd=Decimal("0.01")),
    "gpt-4o-mini": ModelPrice(
        input_per_1k_usd=Decimal("0.00015"), output_per_1k_usd=Decimal("0.0006")
    ),
}


def test_a_served_name_takes_the_price_of_the_longest_configured_name_it_starts_with() -> None:
    assert price_of(PRICES, "gpt-4o-mini-2024-07-18") is PRICES["gpt-4o-mini"]
    assert price_of(PRICES, "gpt-4o-2024-08-06") is PRICES["gpt-4o"]
    assert price_of(PRICES, "llama-3") is None


def test_cost_is_tokens_times_the_price_per_thousand() -> None:
    spend = Spend(PRICES)

    cost = spend.record("gpt-4o-mini-2024-07-18", 1_400, 120)
    spend.record("llama-3", 1_000, 100)

    assert cost == Decimal("0.000282")  # 1.4 x 0.00015 + 0.12 x 0.0006
    snapshot = spend.snapshot()
    assert snapshot["models"]["gpt-4o-mini-2024-07-18"]["cost_usd"] == "0.000282"
    assert snapshot["models"]["llama-3"] == {
        "calls": 1,
        "input_tokens": 1_000,
        "output_tokens": 100,
        "cost_usd": None,
    }
    assert snapshot["cost_usd"] == "0.000282"


def test_the_default_budget_covers_a_working_day_at_the_benchmarked_rate() -> None:
    reviews = 60 * 8 * 3600  # 60 intents/s for 8 hours
    settings = AnalystSettings()

    assert settings.max_tokens_per_day >= reviews * 1_500
    assert settings.model in settings.prices
