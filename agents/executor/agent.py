"""The executor: execute approved intents on a broker, exactly once per intent.

For each `risk.approved.<SYMBOL>`:
1. if an order record exists for the intent (a redelivery), finish that order;
2. else, while halted, reject with `halted` (nothing was sent);
3. else record the order in the `orders` KV bucket (an atomic create: only one record per
   intent can ever exist) BEFORE sending it to the broker;
4. send it (brokers are idempotent on the order id), store the execution on the record, and
   publish `order.filled.<SYMBOL>` or `order.rejected.<SYMBOL>`.
A crash anywhere re-runs the same steps with the same order id, so no intent fills twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agents.base import Agent, Worker
from agents.common.prices import PriceBook
from agents.executor.broker import Broker, Execution, Order, PaperBroker
from agents.executor.metrics import ORDERS
from bus import Delivery, Emit, Outcome
from contracts import (
    Identity,
    OrderFilled,
    OrderRejected,
    OrderRejectReason,
    RiskApproved,
    TradeIntent,
    TradingState,
    parse,
)
from contracts import subjects as s
from contracts import topology as t
from contracts.base import EVENT_NAMESPACE

MAX_IN_FLIGHT = 32


def order_id_for(intent_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{intent_id}:order")


def _record(order: Order, execution: Execution | None) -> bytes:
    body: dict[str, Any] = {
        "order_id": str(order.order_id),
        "intent": order.intent.model_dump(mode="json"),
        "market_price": str(order.market_price),
    }
    if execution is not None:
        body["execution"] = {
            "filled": execution.filled,
            "price": None if execution.price is None else str(execution.price),
            "quantity": None if execution.quantity is None else str(execution.quantity),
            "fee": None if execution.fee is None else str(execution.fee),
            "reason": execution.reason,
            "detail": execution.detail,
            "executed_at": execution.executed_at.isoformat() if execution.executed_at else None,
        }
    return json.dumps(body).encode()


def _parse_record(raw: bytes) -> tuple[Order, Execution | None]:
    body = json.loads(raw)
    order = Order(
        uuid.UUID(body["order_id"]),
        TradeIntent.model_validate(body["intent"]),
        Decimal(body["market_price"]),
    )
    ex = body.get("execution")
    if ex is None:
        return order, None
    dec = {k: None if ex[k] is None else Decimal(ex[k]) for k in ("price", "quantity", "fee")}
    reason = None if ex["reason"] is None else OrderRejectReason(ex["reason"])
    at = ex.get("executed_at")
    return order, Execution(
        order.order_id,
        ex["filled"],
        reason=reason,
        detail=ex["detail"],
        executed_at=datetime.fromisoformat(at) if at else None,
        **dec,
    )


class Executor(Agent):
    identity = Identity.EXECUTOR

    def __init__(self, *args: Any, broker: Broker | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prices = PriceBook()
        config = self.settings.broker
        self.broker: Broker = broker or PaperBroker(
            config.slippage_bps, config.fee_bps, config.min_fee_usd
        )
        self._orders: KeyValue | None = None

    async def open(self) -> None:
        self._orders = await self.js.key_value("orders")
        await self.prices.follow(self.nc, [i.symbol for i in self.settings.instruments])

    async def not_ready(self) -> list[str]:
        return [] if self._orders is not None else ["orders bucket: not bound"]

    def workers(self) -> Sequence[Worker]:
        return [Worker(t.consumer("executor"), lambda m: parse(RiskApproved, m.data), self.handle)]

    async def handle(self, items: Sequence[Delivery[RiskApproved]]) -> Sequence[Outcome]:
        # Bounded concurrency: each order re-checks the trading state right before it is sent,
        # and a kill must not wait behind hundreds of orders already in flight.
        limit = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def one(approved: RiskApproved) -> Sequence[Emit]:
            async with limit:
                return await self._one(approved)

        return await asyncio.gather(*(one(i.value) for i in items), return_exceptions=True)

    async def _load(self, key: str) -> tuple[Order, Execution | None, int] | None:
        assert self._orders is not None
        try:
            entry = await self._orders.get(key)
        except KeyNotFoundError:
            return None
        order, execution = _parse_record(entry.value or b"")
        assert entry.revision is not None
        return order, execution, entry.revision

    async def _one(self, approved: RiskApproved) -> Sequence[Emit]:
        assert self._orders is not None
        key = str(approved.intent_id)
        tick = self.prices.get(approved.intent.symbol)
        record: tuple[Order, Execution | None, int] | None = None
        if self.trading_state is not TradingState.HALTED and tick is not None:
            order = Order(order_id_for(approved.intent_id), approved.intent, tick.price)
            try:  # the common case: first delivery, one round trip to record the order
                record = (order, None, await self._orders.create(key, _record(order, None)))
            except KeyWrongLastSequenceError:
                record = await self._load(key)  # a redelivery, or a replica recorded it first
        else:
            record = await self._load(key)  # an order recorded before the halt is finished
            if record is None:
                if tick is None:
                    reason, detail = OrderRejectReason.NO_PRICE, "no market price for the symbol"
                else:
                    reason, detail = OrderRejectReason.HALTED, "trading is halted (kill switch)"
                return [self._rejected(approved.intent, approved, reason, detail + "; not sent")]
        assert record is not None
        order, execution, revision = record
        if execution is None:
            if self.trading_state is TradingState.HALTED:
                # Recorded but not yet sent when the halt arrived: cancel instead of sending.
                execution = Execution(
                    order.order_id,
                    filled=False,
                    reason=OrderRejectReason.HALTED,
                    detail="trading halted after the order was recorded; not sent",
                )
            else:
                execution = await self.broker.submit(order)
            try:
                await self._orders.update(key, _record(order, execution), last=revision)
            except KeyWrongLastSequenceError:
                return await self._one(approved)  # someone stored the execution first
        return [self._outcome(order, execution, approved)]

    def _outcome(self, order: Order, execution: Execution, approved: RiskApproved) -> Emit:
        intent = order.intent
        if not execution.filled:
            reason = execution.reason or OrderRejectReason.BROKER_ERROR
            return self._rejected(intent, approved, reason, execution.detail)
        assert execution.price is not None and execution.quantity is not None
        event = OrderFilled.derive(
            intent_id=intent.intent_id,
            producer=self.identity,
            causation_id=approved.event_id,
            intent=intent,
            order_id=order.order_id,
            fill_price=execution.price,
            fill_quantity=execution.quantity,
            fee=execution.fee or Decimal(0),
            broker=self.broker.name,
        )
        if execution.executed_at is not None:
            event = event.model_copy(update={"ts": execution.executed_at})
        ORDERS.labels(outcome="filled").inc()
        return Emit(s.intent_event(s.ORDER_FILLED, intent.symbol, intent.intent_id), event)

    def _rejected(
        self, intent: TradeIntent, approved: RiskApproved, reason: OrderRejectReason, detail: str
    ) -> Emit:
        event = OrderRejected.derive(
            intent_id=intent.intent_id,
            producer=self.identity,
            causation_id=approved.event_id,
            intent=intent,
            reason=reason,
            detail=detail,
        )
        ORDERS.labels(outcome=str(reason)).inc()
        return Emit(s.intent_event(s.ORDER_REJECTED, intent.symbol, intent.intent_id), event)
