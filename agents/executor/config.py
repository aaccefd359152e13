"""The executor's settings section: `[broker]` (the paper broker's slippage and fees)."""

from __future__ import annotations

from decimal import Decimal

from agents.common.config import Section


class BrokerConfig(Section):
    """The paper broker: slippage and fees (`[broker]`)."""

    slippage_bps: Decimal = Decimal("2")
    """Price moved against the order, in basis points of the last price."""
    fee_bps: Decimal = Decimal("1")
    """Fee per fill in basis points of its notional."""
    min_fee_usd: Decimal = Decimal("0.01")
    """The least a fill pays: splitting an order into dust cannot round its fees to zero."""
