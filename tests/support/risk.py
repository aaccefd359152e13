"""Builders of intents, events and check contexts for the risk gate's unit tests."""

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
    Identity,
    IntentAnalyzed,
    OrderFilled,
    OrderRejected,
    OrderRejectReason,
    OrderType,
    Recommendation,
    RiskApproved,
    Side,
    TradeIntent,
    TradingState,
)

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
    return TradeIntent(
        intent_id=intent_id or uuid.uuid4(),
        account=account,
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        order_type=OrderType.LIMIT if limit_price else OrderType.MARKET,
        limit_price=Decimal(limit_price) if limit_price else None,
    )


def analysis(
    recommendation: Recommendation = Recommendation.APPROVE, confidence: float = 0.9
) -> Analysis:
    return Analysis(
        recommendation=recommendation, confidence=confidence, rationale="ok", model="test"
    )


def analyzed(
    trade: TradeIntent,
    *,
    price: Decimal | None = PRICE,
    price_ts: datetime | None = NOW,
    ts: datetime = NOW,
    review: Analysis | None = None,
) -> IntentAnalyzed:
    return IntentAnalyzed.derive(
        intent_id=trade.intent_id,
        producer=Identity.ANALYST,
        ts=ts,
        intent=trade,
        reference_price=price,
        reference_price_ts=price_ts,
        analysis=review or analysis(),
    )


def approved(trade: TradeIntent, price: Decimal = PRICE) -> RiskApproved:
    return RiskApproved.derive(
        intent_id=trade.intent_id,
        producer=Identity.RISK,
        ts=NOW,
        intent=trade,
        reference_price=price,
        notional_usd=trade.quantity * price,
    )


def filled(
    trade: TradeIntent,
    price: Decimal = PRICE,
    quantity: Decimal | None = None,
    fee: Decimal = Decimal(0),
    ts: datetime = NOW,
) -> OrderFilled:
    return OrderFilled.derive(
        intent_id=trade.intent_id,
        producer=Identity.EXECUTOR,
        ts=ts,
        intent=trade,
        order_id=uuid.uuid4(),
        fill_price=price,
        fill_quantity=trade.quantity if quantity is None else quantity,
        fee=fee,
        broker="paper",
    )


def order_rejected(trade: TradeIntent) -> OrderRejected:
    return OrderRejected.derive(
        intent_id=trade.intent_id,
        producer=Identity.EXECUTOR,
        ts=NOW,
        intent=trade,
        reason=OrderRejectReason.HALTED,
    )


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
