"""Properties of the book: no burst passes the position limit; a replay rebuilds the same book."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.risk.checks import evaluate
from agents.risk.config import Limits
from agents.risk.exposure import Exposure
from contracts import OrderFilled, OrderRejected, RiskApproved, Side, TradeIntent, TradingState
from tests.support.risk import (
    AAPL,
    NOW,
    PRICE,
    analyzed,
    approved,
    filled,
    intent,
    order_rejected,
)

D = Decimal
LIMIT = AAPL.position_limit
PERMISSIVE = Limits(
    concentration_pct=D(100), max_leverage=D(1000), max_notional_usd=D(10**9),
    rate_limit_per_s=10**6,
)  # fmt: skip

new_intent = st.tuples(
    st.just("intent"),
    st.sampled_from([Side.BUY, Side.SELL]),
    # lots of 100 up to the per-order maximum, plus odd sizes: drawn evenly, not small-biased
    st.one_of(st.sampled_from(range(100, int(AAPL.max_quantity) + 1, 100)), st.integers(1, 5000)),
    st.sampled_from(["paper-1", "paper-2"]),
)
outcome = st.tuples(
    st.sampled_from(["fill", "reject"]),
    st.integers(min_value=0, max_value=10**6),  # which pending intent
    st.integers(min_value=1, max_value=100),  # percent of it filled
)
operations = st.lists(st.one_of(new_intent, new_intent, outcome), min_size=20, max_size=120)
"""Intents twice as likely as outcomes, so pending approvals pile up."""


@dataclass
class Run:
    """A book driven through `evaluate` and outcomes, and the events it produced in order."""

    exposure: Exposure = field(default_factory=lambda: Exposure(D(2_000_000)))
    risk_stream: list[RiskApproved] = field(default_factory=list)
    orders_stream: list[OrderFilled | OrderRejected] = field(default_factory=list)
    intents: dict[uuid.UUID, TradeIntent] = field(default_factory=dict)
    seen: int = 0

    def step(self, op: tuple[Any, ...]) -> None:
        if op[0] == "intent":
            _, side, quantity, account = op
            # ids from a counter: the run (which pending intent an outcome picks) must be a
            # function of `ops` alone, as hypothesis replays it
            self.seen += 1
            trade = intent(D(quantity), side, account=account, intent_id=uuid.UUID(int=self.seen))
            verdict = evaluate(
                analyzed(trade), self.exposure, trading_state=TradingState.ACTIVE,
                limits=PERMISSIVE, instrument=AAPL, now=NOW, market_open=True,
            )  # fmt: skip
            if verdict.approved:
                self.intents[trade.intent_id] = trade
                self.risk_stream.append(approved(trade))
            return
        pending = sorted(self.exposure.pending)
        if not pending:
            return
        _, which, percent = op
        trade = self.intents[pending[which % len(pending)]]
        if op[0] == "fill":
            part = max(D(1), (trade.quantity * percent / 100).to_integral_value())
            fill = filled(trade, price=PRICE + which % 7, quantity=part)
            self.exposure.apply_fill(fill)
            self.orders_stream.append(fill)
        else:
            rejection = order_rejected(trade)
            self.exposure.apply_order_rejected(rejection)
            self.orders_stream.append(rejection)


def snapshot(exposure: Exposure) -> tuple[object, ...]:
    return (
        {k: v for k, v in exposure.lines.items() if v.position or v.pending_buy or v.pending_sell},
        exposure.pending,
        exposure.closed,
        exposure.realized_usd,
        exposure.realized_on(NOW.date()),
    )


def rebuild(
    risk_stream: list[RiskApproved], orders_stream: list[OrderFilled | OrderRejected]
) -> Exposure:
    """Do what the gate does at start-up: the RISK stream, then the ORDERS stream."""
    exposure = Exposure(D(2_000_000))
    for approval in risk_stream:
        exposure.apply_approved(approval)
    for event in orders_stream:
        if isinstance(event, OrderFilled):
            exposure.apply_fill(event)
        else:
            exposure.apply_order_rejected(event)
    return exposure


@settings(max_examples=150, deadline=None)
@given(operations)
def test_no_sequence_of_intents_and_outcomes_lets_position_plus_pending_pass_the_limit(
    ops: list[tuple[Any, ...]],
) -> None:
    run = Run()
    for op in ops:
        run.step(op)
        for line in run.exposure.lines.values():
            # whichever pending orders fill, the position stays within the limit
            assert -LIMIT <= line.lower <= line.position <= line.upper <= LIMIT


@settings(max_examples=100, deadline=None)
@given(operations, st.data())
def test_replaying_the_streams_rebuilds_the_live_book_even_with_fills_seen_again(
    ops: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    # Arrange: a live history
    run = Run()
    for op in ops:
        run.step(op)

    # Act: replay, then the risk-orders consumer delivers some of the same outcomes again
    replayed = rebuild(run.risk_stream, run.orders_stream)
    again = data.draw(st.lists(st.sampled_from(run.orders_stream))) if run.orders_stream else []
    for event in again:
        if isinstance(event, OrderFilled):
            replayed.apply_fill(event)
        else:
            replayed.apply_order_rejected(event)

    # Assert
    assert snapshot(replayed) == snapshot(run.exposure)
    assert snapshot(rebuild(run.risk_stream, run.orders_stream)) == snapshot(replayed)
