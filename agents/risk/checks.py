"""The risk gate's deterministic checks, in the style of NautilusTrader's `RiskEngine`.

One `_check_<thing>(ctx) -> RiskReason | None` per limit, each a few lines, run in the fixed
order of `CHECKS` (the order of `RiskReason`). Every failing check is reported, not only the
first. `evaluate` is the whole decision for one intent: record it in the rate window, build the
context from the book, run the checks and, when all pass, count the intent as pending at once, so
the next intent of the same batch already sees it.

The price of an intent (`check_price`): the reference price for a market order; for a limit
order, the larger of the reference and the limit price (the limit alone when there is no
reference), so a notional is never understated: a buy fills at or below its limit, and a sell
limit under the market fills near the market. The reference price is the gate's own latest tick,
or the newer price the intent carries from acceptance when it is believable (`trusted_price`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from agents.common.config import Instrument
from agents.risk.config import Limits
from agents.risk.exposure import Exposure, ExposureView
from contracts import (
    Analysis,
    IntentAnalyzed,
    OrderType,
    Recommendation,
    RiskReason,
    Side,
    TradeIntent,
    TradingState,
)

HUNDRED = Decimal(100)
DETAIL_REASONS = 3
"""How many of the failing reasons the human-readable detail spells out."""


@dataclass(frozen=True)
class CheckContext:
    """Everything one intent's checks read: the intent, the desk's state and the book."""

    intent: TradeIntent
    analysis: Analysis
    trading_state: TradingState
    limits: Limits
    instrument: Instrument | None
    """None when the symbol is not in the tradable universe."""
    now: datetime
    reference_price: Decimal | None
    reference_price_ts: datetime | None
    market_open: bool
    intents_in_window: int
    """Intents of the account in the sliding second up to this one, this one included."""
    book: ExposureView

    @property
    def price(self) -> Decimal | None:
        """The price the notional and exposure use (see the module docstring)."""
        return check_price(self.intent, self.reference_price)

    @property
    def notional_usd(self) -> Decimal | None:
        price = self.price
        return None if price is None else self.intent.quantity * price

    @property
    def reduces_position(self) -> bool:
        """True if the order reduces the account's position even after its pending orders."""
        book, quantity = self.book, self.intent.quantity
        if self.intent.side is Side.SELL:
            return book.position > 0 and quantity <= book.position - book.pending_sell
        return book.position < 0 and quantity <= -book.position - book.pending_buy


def check_price(intent: TradeIntent, reference: Decimal | None) -> Decimal | None:
    """Return the price the limits use for `intent` (see the module docstring)."""
    if intent.order_type is OrderType.LIMIT and intent.limit_price is not None:
        return intent.limit_price if reference is None else max(reference, intent.limit_price)
    return reference


def _check_halted(ctx: CheckContext) -> RiskReason | None:
    return RiskReason.HALTED if ctx.trading_state is TradingState.HALTED else None


def _check_reduce_only(ctx: CheckContext) -> RiskReason | None:
    reducing = ctx.trading_state is TradingState.REDUCING
    return RiskReason.REDUCE_ONLY if reducing and not ctx.reduces_position else None


def _check_symbol_not_allowed(ctx: CheckContext) -> RiskReason | None:
    return RiskReason.SYMBOL_NOT_ALLOWED if ctx.instrument is None else None


def _check_max_quantity(ctx: CheckContext) -> RiskReason | None:
    too_many = ctx.instrument is not None and ctx.intent.quantity > ctx.instrument.max_quantity
    return RiskReason.MAX_QUANTITY if too_many else None


def _check_max_notional(ctx: CheckContext) -> RiskReason | None:
    notional = ctx.notional_usd
    too_large = notional is not None and notional > ctx.limits.max_notional_usd
    return RiskReason.MAX_NOTIONAL if too_large else None


def _check_stale_price(ctx: CheckContext) -> RiskReason | None:
    if ctx.reference_price is None or ctx.reference_price_ts is None:
        return RiskReason.STALE_PRICE
    age_s = (ctx.now - ctx.reference_price_ts).total_seconds()
    return RiskReason.STALE_PRICE if age_s > ctx.limits.stale_price_s else None


def _check_price_collar(ctx: CheckContext) -> RiskReason | None:
    limit, last = ctx.intent.limit_price, ctx.reference_price
    if ctx.intent.order_type is not OrderType.LIMIT or limit is None or last is None:
        return None
    away_pct = abs(limit - last) / last * HUNDRED
    return RiskReason.PRICE_COLLAR if away_pct > ctx.limits.price_collar_pct else None


def _check_position_limit(ctx: CheckContext) -> RiskReason | None:
    if ctx.instrument is None:
        return None
    book, quantity, limit = ctx.book, ctx.intent.quantity, ctx.instrument.position_limit
    if ctx.intent.side is Side.BUY:
        breached = book.position + book.pending_buy + quantity > limit
    else:
        breached = book.position - book.pending_sell - quantity < -limit
    return RiskReason.POSITION_LIMIT if breached else None


def _check_concentration(ctx: CheckContext) -> RiskReason | None:
    book, limits = ctx.book, ctx.limits
    if book.gross_after_usd <= book.gross_before_usd:
        return None  # does not add exposure
    if book.gross_after_usd <= limits.concentration_floor_pct / HUNDRED * book.equity_usd:
        return None
    share_pct = book.symbol_gross_after_usd / book.gross_after_usd * HUNDRED
    return RiskReason.CONCENTRATION if share_pct > limits.concentration_pct else None


def _check_leverage(ctx: CheckContext) -> RiskReason | None:
    book = ctx.book
    adds = book.gross_after_usd > book.gross_before_usd
    over = book.gross_after_usd > ctx.limits.max_leverage * book.equity_usd
    return RiskReason.LEVERAGE if adds and over else None


def _check_daily_loss(ctx: CheckContext) -> RiskReason | None:
    loss = -ctx.book.realized_today_usd
    budget = ctx.limits.daily_loss_pct / HUNDRED * ctx.book.start_of_day_equity_usd
    return RiskReason.DAILY_LOSS if loss > budget and not ctx.reduces_position else None


def _check_rate_limit(ctx: CheckContext) -> RiskReason | None:
    return RiskReason.RATE_LIMIT if ctx.intents_in_window > ctx.limits.rate_limit_per_s else None


def _check_market_closed(ctx: CheckContext) -> RiskReason | None:
    return RiskReason.MARKET_CLOSED if not ctx.market_open else None


def _check_analyst_veto(ctx: CheckContext) -> RiskReason | None:
    analysis, threshold = ctx.analysis, ctx.limits.analyst_veto_confidence
    vetoed = analysis.recommendation is Recommendation.REJECT and analysis.confidence >= threshold
    return RiskReason.ANALYST_VETO if vetoed else None


Check = Callable[[CheckContext], RiskReason | None]

CHECKS: tuple[Check, ...] = (
    _check_halted,
    _check_reduce_only,
    _check_symbol_not_allowed,
    _check_max_quantity,
    _check_max_notional,
    _check_stale_price,
    _check_price_collar,
    _check_position_limit,
    _check_concentration,
    _check_leverage,
    _check_daily_loss,
    _check_rate_limit,
    _check_market_closed,
    _check_analyst_veto,
)
"""Every check, in the order they run (the order of `RiskReason`)."""


def run_checks(ctx: CheckContext) -> tuple[RiskReason, ...]:
    """Run every check in order; return every failing reason, in check order."""
    return tuple(reason for check in CHECKS if (reason := check(ctx)) is not None)


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one intent and the context it was made in."""

    reasons: tuple[RiskReason, ...]
    ctx: CheckContext

    @property
    def approved(self) -> bool:
        return not self.reasons


def trusted_price(
    carried: tuple[Decimal | None, datetime | None],
    tick: tuple[Decimal, datetime] | None,
    *,
    now: datetime,
    collar_pct: Decimal,
) -> tuple[Decimal | None, datetime | None]:
    """The price the limits are checked at: the gate's own latest tick, unless the intent carries
    a newer one that is believable. A carried price comes through other agents (a compromised
    analyst can write any): it is not believed when stamped in the future, nor when it lies
    outside the collar around the gate's own tick."""
    price, at = carried
    own = tick if tick is not None else (None, None)
    if price is None or at is None or at > now:
        return own
    if tick is None:
        return price, at
    if at <= tick[1] or abs(price - tick[0]) > tick[0] * collar_pct / 100:
        return tick
    return price, at


def evaluate(
    event: IntentAnalyzed,
    book: Exposure,
    *,
    trading_state: TradingState,
    limits: Limits,
    instrument: Instrument | None,
    now: datetime,
    market_open: bool,
) -> Verdict:
    """Decide one intent; on approval it is pending in `book` before this returns."""
    intent = event.intent
    in_window = book.record_intent(intent.account, event.ts)
    price, price_ts = trusted_price(
        (event.reference_price, event.reference_price_ts),
        book.latest(intent.symbol),
        now=now,
        collar_pct=limits.price_collar_pct,
    )
    ctx = CheckContext(
        intent=intent,
        analysis=event.analysis,
        trading_state=trading_state,
        limits=limits,
        instrument=instrument,
        now=now,
        reference_price=price,
        reference_price_ts=price_ts,
        market_open=market_open,
        intents_in_window=in_window,
        book=book.view(intent, check_price(intent, price), now.astimezone(UTC).date()),
    )
    verdict = Verdict(run_checks(ctx), ctx)
    if verdict.approved:
        book.approve(intent)
    return verdict


# -- the human-readable detail of a rejection ---------------------------------------------------


def _n(value: Decimal | float | int | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, Decimal):
        cents = value.quantize(Decimal("0.01"))
        whole = cents.to_integral_value()
        return f"{whole:,f}" if cents == whole else f"{cents:,f}"
    return f"{value:,}"


def _explain_reduce_only(ctx: CheckContext) -> str:
    book = ctx.book
    return (
        f"reduce_only: trading is reducing; {ctx.intent.side} {_n(ctx.intent.quantity)} does not "
        f"reduce position {_n(book.position)} (pending buy {_n(book.pending_buy)}, "
        f"sell {_n(book.pending_sell)})"
    )


def _explain_position_limit(ctx: CheckContext) -> str:
    book, intent = ctx.book, ctx.intent
    limit = ctx.instrument.position_limit if ctx.instrument else None
    buying = intent.side is Side.BUY
    pending = book.pending_buy if buying else -book.pending_sell
    after = book.position + pending + (intent.quantity if buying else -intent.quantity)
    return (
        f"position_limit: {intent.symbol} position {_n(book.position)} + pending {_n(pending)} "
        f"+ {intent.side} {_n(intent.quantity)} = {_n(after)}, beyond the limit of {_n(limit)}"
    )


def _explain_concentration(ctx: CheckContext) -> str:
    book = ctx.book
    gross = book.gross_after_usd
    share = book.symbol_gross_after_usd / gross * HUNDRED if gross else Decimal(0)
    return (
        f"concentration: {ctx.intent.symbol} would be {_n(share)}% of gross exposure "
        f"{_n(book.gross_after_usd)} USD, above {_n(ctx.limits.concentration_pct)}%"
    )


def _explain_stale_price(ctx: CheckContext) -> str:
    if ctx.reference_price_ts is None:
        return f"stale_price: no price of {ctx.intent.symbol} yet"
    age_s = (ctx.now - ctx.reference_price_ts).total_seconds()
    return (
        f"stale_price: latest {ctx.intent.symbol} price is {age_s:,.1f} s old, "
        f"more than {ctx.limits.stale_price_s:g} s"
    )


_EXPLAIN: dict[RiskReason, Callable[[CheckContext], str]] = {
    RiskReason.HALTED: lambda ctx: "halted: trading is halted by the kill switch",
    RiskReason.REDUCE_ONLY: _explain_reduce_only,
    RiskReason.SYMBOL_NOT_ALLOWED: lambda ctx: (
        f"symbol_not_allowed: {ctx.intent.symbol} is not in the tradable instruments"
    ),
    RiskReason.MAX_QUANTITY: lambda ctx: (
        f"max_quantity: {_n(ctx.intent.quantity)} is more than the "
        f"{_n(ctx.instrument.max_quantity if ctx.instrument else None)} allowed per order"
    ),
    RiskReason.MAX_NOTIONAL: lambda ctx: (
        f"max_notional: {_n(ctx.notional_usd)} USD is more than "
        f"{_n(ctx.limits.max_notional_usd)} USD"
    ),
    RiskReason.STALE_PRICE: _explain_stale_price,
    RiskReason.PRICE_COLLAR: lambda ctx: (
        f"price_collar: limit {_n(ctx.intent.limit_price)} is more than "
        f"{_n(ctx.limits.price_collar_pct)}% away from the last price {_n(ctx.reference_price)}"
    ),
    RiskReason.POSITION_LIMIT: _explain_position_limit,
    RiskReason.CONCENTRATION: _explain_concentration,
    RiskReason.LEVERAGE: lambda ctx: (
        f"leverage: gross exposure {_n(ctx.book.gross_after_usd)} USD would exceed "
        f"{_n(ctx.limits.max_leverage)} x equity {_n(ctx.book.equity_usd)} USD"
    ),
    RiskReason.DAILY_LOSS: lambda ctx: (
        f"daily_loss: realized {_n(ctx.book.realized_today_usd)} USD today is beyond "
        f"{_n(ctx.limits.daily_loss_pct)}% of {_n(ctx.book.start_of_day_equity_usd)} USD; "
        "only reducing orders pass"
    ),
    RiskReason.RATE_LIMIT: lambda ctx: (
        f"rate_limit: {ctx.intents_in_window} intents of {ctx.intent.account} within 1 s, "
        f"more than {ctx.limits.rate_limit_per_s}"
    ),
    RiskReason.MARKET_CLOSED: lambda ctx: (
        f"market_closed: {ctx.intent.symbol}'s market "
        f"({ctx.instrument.calendar if ctx.instrument else '?'}) is closed"
    ),
    RiskReason.ANALYST_VETO: lambda ctx: (
        f"analyst_veto: the analyst recommends reject with confidence "
        f"{ctx.analysis.confidence:.2f} (veto at {ctx.limits.analyst_veto_confidence:.2f})"
    ),
}


def explain(verdict: Verdict, first: int = DETAIL_REASONS) -> str:
    """Return the human-readable detail naming the first failing reasons, with their numbers."""
    parts = [_EXPLAIN[reason](verdict.ctx) for reason in verdict.reasons[:first]]
    more = len(verdict.reasons) - first
    if more > 0:
        parts.append(f"and {more} more: {', '.join(verdict.reasons[first:])}")
    return "; ".join(parts)
