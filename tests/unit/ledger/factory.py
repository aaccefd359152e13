"""Build `OrderFilled` events for ledger tests."""

from __future__ import annotations

import uuid
from decimal import Decimal

from contracts import Identity, OrderFilled, Side, TradeIntent


def make_fill(
    side: Side | str,
    quantity: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    *,
    symbol: str = "AAPL",
    account: str = "paper-1",
    currency: str = "USD",
    intent_id: uuid.UUID | None = None,
) -> OrderFilled:
    """Return a fill of `quantity` `symbol` at `price` for `account`, as the executor posts it."""
    intent = TradeIntent(
        intent_id=intent_id or uuid.uuid4(),
        account=account,
        symbol=symbol,
        side=Side(side),
        quantity=Decimal(quantity),
    )
    return OrderFilled.derive(
        intent_id=intent.intent_id,
        producer=Identity.EXECUTOR,
        intent=intent,
        order_id=uuid.uuid5(intent.intent_id, "order"),
        fill_price=Decimal(price),
        fill_quantity=Decimal(quantity),
        fee=Decimal(fee),
        currency=currency,
        broker="paper",
    )
