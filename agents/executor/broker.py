"""The broker interface and the paper broker.

A broker adapter must treat `Order.order_id` as the client order id and be idempotent on it:
submitting the same order twice returns the first execution (real brokers reject or return
duplicates of a client order id; the executor relies on that after a crash).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from contracts import OrderRejectReason, OrderType, Side, TradeIntent

PRICE_STEP = Decimal("0.0001")
CENT = Decimal("0.01")
BPS = Decimal(10000)


@dataclass(frozen=True)
class Order:
    """What the executor sends: the intent plus the market price it saw when recording it."""

    order_id: uuid.UUID
    intent: TradeIntent
    market_price: Decimal


@dataclass(frozen=True)
class Execution:
    """A broker's answer: filled (price, quantity, fee) or rejected (reason)."""

    order_id: uuid.UUID
    filled: bool
    price: Decimal | None = None
    quantity: Decimal | None = None
    fee: Decimal | None = None
    reason: OrderRejectReason | None = None
    detail: str = ""
    executed_at: datetime | None = None
    """When the broker executed it (the fill's time)."""


class Broker(Protocol):
    name: str

    async def submit(self, order: Order) -> Execution:
        """Execute `order`; idempotent on `order.order_id`."""
        ...


class PaperBroker:
    """Fills market orders at the last price plus slippage; limit orders only if marketable (IOC).

    Deterministic: the execution is a function of the order (which carries the market price
    snapshot), so a re-submission after a crash yields the identical fill.
    """

    name = "paper"

    def __init__(
        self, slippage_bps: Decimal, fee_bps: Decimal, min_fee: Decimal = Decimal("0.01")
    ) -> None:
        self.slippage_bps = slippage_bps
        self.fee_bps = fee_bps
        self.min_fee = min_fee

    async def submit(self, order: Order) -> Execution:
        return self.execute(order)

    def execute(self, order: Order) -> Execution:
        intent, last = order.intent, order.market_price
        sign = Decimal(1) if intent.side is Side.BUY else Decimal(-1)
        price = (last * (1 + sign * self.slippage_bps / BPS)).quantize(PRICE_STEP, ROUND_HALF_EVEN)
        if intent.order_type is OrderType.LIMIT:
            assert intent.limit_price is not None
            marketable = last <= intent.limit_price if sign > 0 else last >= intent.limit_price
            if not marketable:
                return Execution(
                    order.order_id,
                    filled=False,
                    reason=OrderRejectReason.NOT_MARKETABLE,
                    detail=f"limit {intent.limit_price} not marketable at last {last} (IOC)",
                )
            # never worse than the limit
            price = min(price, intent.limit_price) if sign > 0 else max(price, intent.limit_price)
        fee = (price * intent.quantity * self.fee_bps / BPS).quantize(CENT, ROUND_HALF_EVEN)
        fee = max(fee, self.min_fee)  # a non-zero notional never pays nothing
        return Execution(
            order.order_id,
            filled=True,
            price=price,
            quantity=intent.quantity,
            fee=fee,
            executed_at=datetime.now(UTC),
        )
