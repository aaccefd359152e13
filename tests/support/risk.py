"""Builders for the risk gate's tests: instruments, a clock inside market hours, exposure views and
check contexts, and the events of `tests.support.events` at that clock."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from agents.common.config import Instrument
from agents.risk.checks import CheckContext
from agents.risk.config import Limits
from agents.risk.exposure import ExposureView
from contracts import (
    Analysis,
    IntentAnalyzed,
    OrderFilled,
    OrderRejected,
    OrderRejectReason,
    RiskApproved,
    Side,
    TradeIntent,
    TradingState,
)
from tests.support import events
from tests.support.events import analysis

NOW = datetime(2024, 6, 5, 19, 0, tzinfo=UTC)
"""A Wednesday, 15:00 in New York: XNYS is open."""
AAPL = Instrument(
    symbol="AAPL",
    max_quantity=Decimal(5000),
    position_limit=Decimal(10000),
    start_price=Decimal("190.00"),
)
BTC = Instrument(
    symbol="BTC-USD",
    calendar="24/7",
    max_quantity=Decimal(10),
    position_limit=Decimal(20),
    start_price=Decimal("65000"),
)
PRICE = Decimal("190.00")
EQUITY = Decimal("1000000")


def intent(
    quantity: str | Decimal = "100",
    side: Side = Side.BUY,
    symbol: str = "AAPL",
    account: str = "paper-1",
    limit_price: str | None = None,
    intent_id: uuid.UUID | None = None,
) -> TradeIntent:
    return events.trade_intent(
        symbol=symbol,
        side=side,
        quantity=quantity,
        account=account,
        limit_price=limit_price,
        intent_id=intent_id,
    )


def analyzed(
    trade: TradeIntent,
    *,
    price: Decimal | None = PRICE,
    price_ts: datetime | None = NOW,
    ts: datetime = NOW,
    review: Analysis | None = None,
) -> IntentAnalyzed:
    return events.intent_analyzed(
        trade, review=review, reference_price=price, reference_price_ts=price_ts, ts=ts
    )


def approved(trade: TradeIntent, price: Decimal = PRICE) -> RiskApproved:
    return events.risk_approved(trade, reference_price=price, ts=NOW)


def filled(
    trade: TradeIntent,
    price: Decimal = PRICE,
    quantity: Decimal | None = None,
    fee: Decimal = Decimal(0),
    ts: datetime = NOW,
) -> OrderFilled:
    return events.order_filled(trade, price=price, quantity=quantity, fee=fee, ts=ts)


def order_rejected(trade: TradeIntent) -> OrderRejected:
    return events.order_rejected(trade, reason=OrderRejectReason.HALTED, ts=NOW)


def view(**fields: Any) -> ExposureView:
    """Return an empty book's view (1M equity, no exposure) with `fields` changed."""
    base = ExposureView(
        position=Decimal(0),
        pending_buy=Decimal(0),
        pending_sell=Decimal(0),
        symbol_gross_before_usd=Decimal(0),
        symbol_gross_after_usd=Decimal(0),
        gross_before_usd=Decimal(0),
        gross_after_usd=Decimal(0),
        equity_usd=EQUITY,
        start_of_day_equity_usd=EQUITY,
        realized_today_usd=Decimal(0),
    )
    return dataclasses.replace(base, **fields)


def context(trade: TradeIntent | None = None, **fields: Any) -> CheckContext:
    """Return a context every check passes (a fresh price, open market, empty book), changed."""
    base = CheckContext(
        intent=trade or intent(),
        analysis=analysis(),
        trading_state=TradingState.ACTIVE,
        limits=Limits(),
        instrument=AAPL,
        now=NOW,
        reference_price=PRICE,
        reference_price_ts=NOW - timedelta(seconds=1),
        market_open=True,
        intents_in_window=1,
        book=view(),
    )
    return dataclasses.replace(base, **fields)
