"""The risk gate's settings section: `[limits]`."""

from __future__ import annotations

from decimal import Decimal

from agents.common.config import Section


class Limits(Section):
    max_notional_usd: Decimal = Decimal("250000")
    stale_price_s: float = 30.0
    price_collar_pct: Decimal = Decimal("5")
    concentration_pct: Decimal = Decimal("40")
    concentration_floor_pct: Decimal = Decimal("10")
    """Concentration applies once gross exposure exceeds this share of equity."""
    max_leverage: Decimal = Decimal("2")
    daily_loss_pct: Decimal = Decimal("2")
    rate_limit_per_s: int = 20
    analyst_veto_confidence: float = 0.8
