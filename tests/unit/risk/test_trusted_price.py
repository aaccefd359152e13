"""The price the gate checks limits at: its own view, unless a carried price is believable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from agents.risk.checks import trusted_price

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
TICK = (Decimal("67000"), NOW - timedelta(seconds=5))
COLLAR = Decimal("5")


def price(carried: str, age_s: float, tick: tuple[Decimal, datetime] | None = TICK) -> object:
    at = NOW - timedelta(seconds=age_s)
    return trusted_price((Decimal(carried), at), tick, now=NOW, collar_pct=COLLAR)


def test_a_newer_carried_price_inside_the_collar_is_used() -> None:
    assert price("67500", 1) == (Decimal("67500"), NOW - timedelta(seconds=1))


def test_a_carried_price_stamped_in_the_future_is_not_believed() -> None:
    assert price("1000", -3600) == TICK
    assert price("1000", -3600, tick=None) == (None, None)  # nothing believable: stale_price


def test_a_carried_price_outside_the_collar_of_the_gate_s_own_tick_is_not_believed() -> None:
    assert price("1000", 1) == TICK
    assert price("71000", 1) == TICK  # 6% above
    assert price("70300", 1) == (Decimal("70300"), NOW - timedelta(seconds=1))  # 4.9%


def test_an_older_carried_price_loses_to_the_tick_and_none_carried_means_the_tick() -> None:
    assert price("67500", 10) == TICK
    assert trusted_price((None, None), TICK, now=NOW, collar_pct=COLLAR) == TICK
    assert trusted_price((None, None), None, now=NOW, collar_pct=COLLAR) == (None, None)
