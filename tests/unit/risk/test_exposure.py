"""The risk book: P&L from fills, pending approvals, idempotent outcomes, rate windows, views."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from agents.risk.checks import evaluate
from agents.risk.config import Limits
from agents.risk.exposure import Exposure, Line
from contracts import RiskReason, Side, TradingState
from tests.support.risk import (
    AAPL,
    NOW,
    PRICE,
    analyzed,
    filled,
    intent,
    order_rejected,
)

D = Decimal
PERMISSIVE = Limits(concentration_pct=D(100), rate_limit_per_s=10_000)


def book() -> Exposure:
    return Exposure(D(1_000_000))


def test_line_buy_then_sell_higher_realizes_the_difference() -> None:
    line = Line()
    assert line.book(D(100), D(10)) == 0
    assert line.book(D(50), D(13)) == 0  # average cost 11
    assert line.book(D(-150), D(12)) == D(150)
    assert (line.position, line.avg_price) == (D(0), D(0))


def test_line_sell_through_a_long_flips_short_at_the_fill_price() -> None:
    line = Line(position=D(100), avg_price=D(10))
    assert line.book(D(-300), D(8)) == D(-200)
    assert (line.position, line.avg_price) == (D(-200), D(8))


def test_fill_moves_pending_to_position_and_books_pnl_after_fees() -> None:
    # Arrange
    exposure = book()
    buy, sell = intent("100"), intent("100", Side.SELL)
    exposure.approve(buy)
    exposure.apply_fill(filled(buy, price=D(100), fee=D(1)))
    exposure.approve(sell)

    # Act
    exposure.apply_fill(filled(sell, price=D(90), fee=D(1)))

    # Assert
    line = exposure.line("paper-1", "AAPL")
    assert (line.position, line.pending_buy, line.pending_sell) == (D(0), D(0), D(0))
    assert exposure.realized_usd == D(-1002)
    assert exposure.realized_on(NOW.date()) == D(-1002)
    assert exposure.equity_usd() == D(998_998)


def test_fill_seen_twice_is_booked_once() -> None:
    exposure = book()
    buy = intent("100")
    exposure.approve(buy)
    assert exposure.apply_fill(filled(buy)) is True
    assert exposure.apply_fill(filled(buy)) is False
    assert exposure.line("paper-1", "AAPL").position == D(100)


def test_outcome_before_its_approval_leaves_nothing_pending() -> None:
    exposure = book()
    buy = intent("100")
    exposure.apply_fill(filled(buy))
    assert exposure.approve(buy) is False
    assert exposure.pending == {}
    assert exposure.line("paper-1", "AAPL").position == D(100)


def test_executor_rejection_releases_the_pending_exposure() -> None:
    exposure = book()
    sell = intent("700", Side.SELL)
    exposure.approve(sell)
    assert exposure.line("paper-1", "AAPL").pending_sell == D(700)
    exposure.apply_order_rejected(order_rejected(sell))
    assert exposure.line("paper-1", "AAPL").pending_sell == 0
    assert exposure.pending == {}


def test_rate_window_counts_intents_in_the_last_second_per_account() -> None:
    exposure = book()
    offsets_ms = [0, 500, 999, 1000, 1500]
    counts = [exposure.record_intent("a", NOW + timedelta(milliseconds=ms)) for ms in offsets_ms]
    assert counts == [1, 2, 3, 3, 3]  # the window is (t - 1 s, t]
    assert exposure.record_intent("b", NOW) == 1


def test_mark_keeps_the_newest_observation() -> None:
    exposure = book()
    exposure.mark("AAPL", D(191), NOW)
    exposure.mark("AAPL", D(150), NOW - timedelta(seconds=5))
    assert exposure.latest("AAPL") == (D(191), NOW)


def test_view_counts_pending_in_worst_case_gross_and_marks_unrealized() -> None:
    # Arrange: 1,000 AAPL bought at 190, now 200; 500 more pending; 10 MSFT at 400
    exposure = book()
    held, more, other = intent("1000"), intent("500"), intent("10", symbol="MSFT")
    for trade in (held, other):
        exposure.approve(trade)
    exposure.apply_fill(filled(held, price=D(190)))
    exposure.apply_fill(filled(other, price=D(400)))
    exposure.approve(more)
    exposure.mark("AAPL", D(200), NOW)

    # Act: 200 more AAPL at 200
    view = exposure.view(intent("200"), D(200), NOW.date())

    # Assert
    assert (view.position, view.pending_buy, view.pending_sell) == (D(1000), D(500), D(0))
    assert view.symbol_gross_before_usd == D(1500) * 200
    assert view.symbol_gross_after_usd == D(1700) * 200
    assert view.gross_before_usd == D(1500) * 200 + D(4000)
    assert view.gross_after_usd == D(1700) * 200 + D(4000)
    assert view.equity_usd == D(1_000_000) + D(1000) * 10


def test_burst_of_30_intents_in_one_batch_approves_exactly_up_to_the_position_limit() -> None:
    # Arrange
    exposure = book()
    exposure.mark("AAPL", PRICE, NOW)
    events = [analyzed(intent("500")) for _ in range(30)]

    # Act
    verdicts = [
        evaluate(
            e, exposure, trading_state=TradingState.ACTIVE, limits=PERMISSIVE,
            instrument=AAPL, now=NOW, market_open=True,
        )
        for e in events
    ]  # fmt: skip

    # Assert
    assert sum(v.approved for v in verdicts) == 20
    assert all(v.reasons == (RiskReason.POSITION_LIMIT,) for v in verdicts[20:])
    assert exposure.line("paper-1", "AAPL").pending_buy == D(10_000)


def test_evaluate_uses_the_gate_tick_when_newer_than_the_carried_price() -> None:
    # Arrange: the intent carries a 2-minute-old price; the gate saw a tick 1 s ago
    exposure = book()
    exposure.mark("AAPL", D("191.00"), NOW - timedelta(seconds=1))
    event = analyzed(intent("10"), price=D("185.00"), price_ts=NOW - timedelta(minutes=2))

    # Act
    verdict = evaluate(
        event, exposure, trading_state=TradingState.ACTIVE, limits=PERMISSIVE,
        instrument=AAPL, now=NOW, market_open=True,
    )  # fmt: skip

    # Assert
    assert verdict.approved
    assert verdict.ctx.reference_price == D("191.00")
    assert verdict.ctx.notional_usd == D("1910.00")


def test_evaluate_when_only_old_prices_then_stale_and_nothing_pending() -> None:
    exposure = book()
    exposure.mark("AAPL", D("191.00"), NOW - timedelta(seconds=31))
    event = analyzed(intent("10"), price=None, price_ts=None)

    verdict = evaluate(
        event, exposure, trading_state=TradingState.ACTIVE, limits=PERMISSIVE,
        instrument=AAPL, now=NOW, market_open=True,
    )  # fmt: skip

    assert verdict.reasons == (RiskReason.STALE_PRICE,)
    assert exposure.pending == {}


def test_booked_outcomes_are_remembered_up_to_the_bound_and_the_oldest_forgotten() -> None:
    exposure = Exposure(D(1_000_000), remembered_outcomes=3)
    fills = [filled(intent("1", side=Side.BUY if n % 2 else Side.SELL)) for n in range(5)]
    for fill in fills:
        assert exposure.apply_fill(fill)

    assert len(exposure.closed) == 3
    assert not exposure.apply_fill(fills[-1])  # a recent one is booked once
    assert list(exposure.closed) == [f.intent_id for f in fills[2:]]
