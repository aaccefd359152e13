"""Settings sections shared by several agents: the section base and the universe (instruments,
accounts)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

ALWAYS_OPEN = "24/7"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Instrument(Section):
    """One tradable symbol of the universe."""

    symbol: str
    calendar: str = "XNYS"
    """exchange_calendars code of its venue, or `24/7`."""
    max_quantity: Decimal
    position_limit: Decimal
    start_price: Decimal
    """First price of the synthetic feed."""
    volatility_bps: Decimal = Decimal("5")
    """Synthetic feed: standard deviation of one step, in basis points."""


class Account(Section):
    name: str
    starting_cash_usd: Decimal
