"""The paper broker's fills: fees in basis points of the notional, never under the minimum."""

from __future__ import annotations

import uuid
from decimal import Decimal

from agents.executor.broker import Order, PaperBroker
from tests.support.events import trade_intent


def fill_fee(quantity: str, price: str, min_fee: str = "0.01") -> Decimal | None:
    broker = PaperBroker(Decimal("0"), Decimal("1"), Decimal(min_fee))
    order = Order(uuid.uuid4(), trade_intent(symbol="BTC-USD", quantity=quantity), Decimal(price))
    return broker.execute(order).fee


def test_the_fee_is_basis_points_of_the_notional_rounded_to_the_cent() -> None:
    assert fill_fee("10", "190") == Decimal("0.19")
    assert fill_fee("1", "65000") == Decimal("6.50")


def test_dust_orders_pay_the_minimum_fee_so_splitting_an_order_saves_nothing() -> None:
    assert fill_fee("0.0000000001", "65000") == Decimal("0.01")
    whole = fill_fee("1", "65000")
    assert whole is not None
    parts = [fill_fee("0.001", "65000") for _ in range(1000)]
    assert sum(p for p in parts if p is not None) >= whole
    assert fill_fee("0.0000000001", "65000", min_fee="0.05") == Decimal("0.05")
