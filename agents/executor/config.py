"""The executor's settings section: `[broker]` (the paper broker's slippage and fees)."""

from __future__ import annotations

from decimal import Decimal

from agents.common.config import Section


class BrokerConfig(Section):
    slippage_bps: Decimal = Decimal("2")
    fee_bps: Decimal = Decimal("1")
