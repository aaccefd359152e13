"""The risk gate's settings sections: `[limits]` and `[risk]` (what it keeps in memory)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

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


class RiskMemory(Section):
    """How much the gate remembers of its decisions (`[risk]`): bounded, whatever the volume."""

    remembered_decisions: Annotated[int, Field(ge=1000)] = 200_000
    """Intents whose decision is known (a redelivery is answered, not decided again), and whose
    outcome is known to be booked in the gate's exposure (a replayed fill is booked once)."""
    remembered_events: Annotated[int, Field(ge=100)] = 10_000
    """The newest decisions kept whole, to re-publish on a redelivery; older ones by id only."""
