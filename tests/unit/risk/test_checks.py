"""Each pre-trade check passes and fails on its own numbers; all run in a fixed order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from agents.risk import checks as c
from agents.risk.checks import CHECKS, CheckContext, Verdict, explain, run_checks
from agents.risk.config import Limits
from contracts import Recommendation, RiskReason, Side, TradingState
from tests.support.events import analysis
from tests.support.risk import NOW, context, intent, view

D = Decimal


@dataclass(frozen=True)
class Case:
    check: Callable[[CheckContext], RiskReason | None]
    passes: CheckContext
    fails: CheckContext
    reason: RiskReason


CASES: dict[str, Case] = {
    "halted": Case(
        c._check_halted,
        context(trading_state=TradingState.ACTIVE),
        context(trading_state=TradingState.HALTED),
        RiskReason.HALTED,
    ),
    "reduce_only_sell_within_long_position": Case(
        c._check_reduce_only,
        context(intent("500", Side.SELL), trading_state=TradingState.REDUCING,
                book=view(position=D(1000))),
        context(intent("100", Side.BUY), trading_state=TradingState.REDUCING,
                book=view(position=D(1000))),
        RiskReason.REDUCE_ONLY,
    ),
    "reduce_only_sell_larger_than_position_after_pending": Case(
        c._check_reduce_only,
        context(intent("600", Side.SELL), trading_state=TradingState.REDUCING,
                book=view(position=D(1000), pending_sell=D(400))),
        context(intent("601", Side.SELL), trading_state=TradingState.REDUCING,
                book=view(position=D(1000), pending_sell=D(400))),
        RiskReason.REDUCE_ONLY,
    ),
    "reduce_only_buy_covers_short": Case(
        c._check_reduce_only,
        context(intent("300", Side.BUY), trading_state=TradingState.REDUCING,
                book=view(position=D(-300))),
        context(intent("300", Side.BUY), trading_state=TradingState.REDUCING,
                book=view(position=D(0))),
        RiskReason.REDUCE_ONLY,
    ),
    "symbol_not_allowed": Case(
        c._check_symbol_not_allowed,
        context(),
        context(instrument=None),
        RiskReason.SYMBOL_NOT_ALLOWED,
    ),
    "max_quantity": Case(
        c._check_max_quantity,
        context(intent("5000")),
        context(intent("5001")),
        RiskReason.MAX_QUANTITY,
    ),
    "max_notional_market_at_reference": Case(
        c._check_max_notional,
        context(intent("1300")),  # 1,300 x 190 = 247,000
        context(intent("1400")),  # 266,000 > 250,000
        RiskReason.MAX_NOTIONAL,
    ),
    "max_notional_limit_at_higher_of_limit_and_reference": Case(
        c._check_max_notional,
        context(intent("1300", limit_price="180")),  # at the reference 190: 247,000
        context(intent("1300", limit_price="195")),  # at the limit 195: 253,500
        RiskReason.MAX_NOTIONAL,
    ),
    "stale_price_old": Case(
        c._check_stale_price,
        context(reference_price_ts=NOW - timedelta(seconds=30)),
        context(reference_price_ts=NOW - timedelta(seconds=30.5)),
        RiskReason.STALE_PRICE,
    ),
    "stale_price_missing": Case(
        c._check_stale_price,
        context(),
        context(reference_price=None, reference_price_ts=None),
        RiskReason.STALE_PRICE,
    ),
    "price_collar": Case(
        c._check_price_collar,
        context(intent("10", limit_price="199.50")),  # 5.0 % away
        context(intent("10", limit_price="199.60")),  # 5.05 % away
        RiskReason.PRICE_COLLAR,
    ),
    "position_limit_buy_counts_pending": Case(
        c._check_position_limit,
        context(intent("500"), book=view(position=D(9000), pending_buy=D(500))),
        context(intent("501"), book=view(position=D(9000), pending_buy=D(500))),
        RiskReason.POSITION_LIMIT,
    ),
    "position_limit_sell_counts_pending": Case(
        c._check_position_limit,
        context(intent("500", Side.SELL), book=view(position=D(-9000), pending_sell=D(500))),
        context(intent("501", Side.SELL), book=view(position=D(-9000), pending_sell=D(500))),
        RiskReason.POSITION_LIMIT,
    ),
    "position_limit_reducing_buy_passes_when_short_beyond_limit": Case(
        c._check_position_limit,
        context(intent("500", Side.BUY), book=view(position=D(-12000))),
        context(intent("500", Side.SELL), book=view(position=D(-12000))),
        RiskReason.POSITION_LIMIT,
    ),
    "concentration": Case(
        c._check_concentration,
        context(book=view(gross_after_usd=D(200000), symbol_gross_after_usd=D(80000))),
        context(book=view(gross_after_usd=D(200000), symbol_gross_after_usd=D(80001))),
        RiskReason.CONCENTRATION,
    ),
    "concentration_applies_above_floor_only": Case(
        c._check_concentration,
        context(book=view(gross_after_usd=D(100000), symbol_gross_after_usd=D(100000))),
        context(book=view(gross_after_usd=D(100001), symbol_gross_after_usd=D(100001))),
        RiskReason.CONCENTRATION,
    ),
    "leverage": Case(
        c._check_leverage,
        context(book=view(gross_before_usd=D(1900000), gross_after_usd=D(2000000))),
        context(book=view(gross_before_usd=D(1900000), gross_after_usd=D(2000001))),
        RiskReason.LEVERAGE,
    ),
    "leverage_lets_reducing_orders_through": Case(
        c._check_leverage,
        context(book=view(gross_before_usd=D(3000000), gross_after_usd=D(2900000))),
        context(book=view(gross_before_usd=D(3000000), gross_after_usd=D(3000001))),
        RiskReason.LEVERAGE,
    ),
    "daily_loss": Case(
        c._check_daily_loss,
        context(book=view(realized_today_usd=D(-20000))),  # exactly 2 % of 1M
        context(book=view(realized_today_usd=D("-20000.01"))),
        RiskReason.DAILY_LOSS,
    ),
    "daily_loss_lets_reducing_orders_through": Case(
        c._check_daily_loss,
        context(intent("100", Side.SELL),
                book=view(realized_today_usd=D(-50000), position=D(100))),
        context(intent("101", Side.SELL),
                book=view(realized_today_usd=D(-50000), position=D(100))),
        RiskReason.DAILY_LOSS,
    ),
    "rate_limit": Case(
        c._check_rate_limit,
        context(intents_in_window=20),
        context(intents_in_window=21),
        RiskReason.RATE_LIMIT,
    ),
    "market_closed": Case(
        c._check_market_closed,
        context(market_open=True),
        context(market_open=False),
        RiskReason.MARKET_CLOSED,
    ),
    "analyst_veto": Case(
        c._check_analyst_veto,
        context(analysis=analysis(Recommendation.REJECT, 0.79)),
        context(analysis=analysis(Recommendation.REJECT, 0.8)),
        RiskReason.ANALYST_VETO,
    ),
    "analyst_veto_only_on_reject": Case(
        c._check_analyst_veto,
        context(analysis=analysis(Recommendation.REVIEW, 1.0)),
        context(analysis=analysis(Recommendation.REJECT, 1.0)),
        RiskReason.ANALYST_VETO,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_check_when_within_limit_then_passes(name: str) -> None:
    case = CASES[name]
    assert case.check(case.passes) is None


@pytest.mark.parametrize("name", CASES)
def test_check_when_beyond_limit_then_fails_with_its_reason(name: str) -> None:
    case = CASES[name]
    assert case.check(case.fails) is case.reason


def test_every_reason_has_a_tested_check() -> None:
    assert {case.reason for case in CASES.values()} == set(RiskReason)


def test_checks_run_in_the_order_of_the_reason_codes() -> None:
    assert [check.__name__ for check in CHECKS] == [f"_check_{r}" for r in RiskReason]


def test_run_checks_when_everything_is_fine_then_no_reasons() -> None:
    assert run_checks(context()) == ()


def test_run_checks_when_many_fail_then_every_reason_in_check_order() -> None:
    # Arrange: halted, unknown symbol, no price, a burst, a closed market and a confident veto
    ctx = context(
        trading_state=TradingState.HALTED,
        instrument=None,
        reference_price=None,
        reference_price_ts=None,
        intents_in_window=25,
        market_open=False,
        analysis=analysis(Recommendation.REJECT, 0.95),
    )

    # Act
    reasons = run_checks(ctx)

    # Assert
    assert reasons == (
        RiskReason.HALTED,
        RiskReason.SYMBOL_NOT_ALLOWED,
        RiskReason.STALE_PRICE,
        RiskReason.RATE_LIMIT,
        RiskReason.MARKET_CLOSED,
        RiskReason.ANALYST_VETO,
    )


def test_explain_names_the_first_reasons_with_their_numbers() -> None:
    # Arrange: over the quantity, notional and position limits, and a burst
    ctx = context(
        intent("6000"), book=view(position=D(9500), pending_buy=D(500)), intents_in_window=21
    )
    verdict = Verdict(run_checks(ctx), ctx)

    # Act
    detail = explain(verdict)

    # Assert
    assert verdict.reasons == (
        RiskReason.MAX_QUANTITY,
        RiskReason.MAX_NOTIONAL,
        RiskReason.POSITION_LIMIT,
        RiskReason.RATE_LIMIT,
    )
    assert detail == (
        "max_quantity: 6,000 is more than the 5,000 allowed per order; "
        "max_notional: 1,140,000 USD is more than 250,000 USD; "
        "position_limit: AAPL position 9,500 + pending 500 + buy 6,000 = 16,000, "
        "beyond the limit of 10,000; "
        "and 1 more: rate_limit"
    )


@pytest.mark.parametrize("reason", list(RiskReason))
def test_explain_has_words_for_every_reason(reason: RiskReason) -> None:
    ctx = context(limits=Limits())
    text = explain(Verdict((reason,), ctx))
    assert text.startswith(f"{reason}: ")
