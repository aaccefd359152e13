"""The risk gate's own book: positions, pending approvals, P&L, latest prices and intent rates.

Pure state, no I/O. The agent feeds it events, live or replayed at start-up, and asks it for the
numbers the checks read (`view`). Every `apply_*` is idempotent per intent and the outcome of an
intent wins over its approval whatever the order they arrive in, so a fill seen both by the
start-up replay and by the `risk-orders` consumer is booked once, and replaying the same events
yields the same state.

Positions and pending orders belong to one account's line in one symbol. Pending buys and sells
are kept apart so every limit holds in the worst case, whichever pending orders end up filled:
`lower = position - pending_sell <= position + pending_buy = upper`.

Equity is desk-wide: the accounts' starting cash, plus realized P&L (fees included), plus the
unrealized P&L of open positions marked at the latest tick (none for a symbol without a tick).
Realized P&L is bucketed by the UTC date of the fill's event time.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right, insort
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from contracts import OrderFilled, OrderRejected, RiskApproved, Side, TradeIntent

ZERO = Decimal(0)
RATE_WINDOW = timedelta(seconds=1)


def signed(side: Side, quantity: Decimal) -> Decimal:
    """Return `quantity` with the sign of `side`: buys positive, sells negative."""
    return quantity if side is Side.BUY else -quantity


@dataclass
class Line:
    """One account's book in one symbol."""

    position: Decimal = ZERO
    avg_price: Decimal = ZERO
    pending_buy: Decimal = ZERO
    pending_sell: Decimal = ZERO

    @property
    def upper(self) -> Decimal:
        """Position if every pending buy fills and no pending sell does."""
        return self.position + self.pending_buy

    @property
    def lower(self) -> Decimal:
        """Position if every pending sell fills and no pending buy does."""
        return self.position - self.pending_sell

    def worst_quantity(self, side: Side | None = None, quantity: Decimal = ZERO) -> Decimal:
        """Return the largest absolute position reachable, with one more order if given."""
        upper = self.upper + (quantity if side is Side.BUY else ZERO)
        lower = self.lower - (quantity if side is Side.SELL else ZERO)
        return max(abs(upper), abs(lower))

    def book(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Apply a signed fill at `price`; return the realized P&L (before fees)."""
        before = self.position
        after = before + quantity
        if before == 0 or (before > 0) == (quantity > 0):
            self.avg_price = (abs(before) * self.avg_price + abs(quantity) * price) / abs(after)
            self.position = after
            return ZERO
        closed = min(abs(quantity), abs(before))
        realized = closed * (price - self.avg_price) * (1 if before > 0 else -1)
        self.position = after
        if after == 0:
            self.avg_price = ZERO
        elif (after > 0) != (before > 0):
            self.avg_price = price  # flipped: the remainder was opened at this fill
        return realized


@dataclass(frozen=True)
class PendingOrder:
    """An approved intent whose outcome has not arrived yet."""

    account: str
    symbol: str
    side: Side
    quantity: Decimal


@dataclass(frozen=True)
class ExposureView:
    """What the checks read about the book for one intent, priced at the intent's price."""

    position: Decimal
    """The account's booked position in the symbol (signed)."""
    pending_buy: Decimal
    """Approved, not yet booked buys of the account in the symbol."""
    pending_sell: Decimal
    """Approved, not yet booked sells of the account in the symbol."""
    symbol_gross_before_usd: Decimal
    symbol_gross_after_usd: Decimal
    """The symbol's worst-case gross exposure, all accounts, before and after the order."""
    gross_before_usd: Decimal
    gross_after_usd: Decimal
    """The desk's worst-case gross exposure before and after the order."""
    equity_usd: Decimal
    """Starting cash + realized P&L + unrealized P&L at the latest ticks."""
    start_of_day_equity_usd: Decimal
    """Starting cash + realized P&L before today (UTC)."""
    realized_today_usd: Decimal
    """Realized P&L today (UTC), fees included; negative is a loss."""


class Exposure:
    """Positions from fills, pending approvals, realized P&L, latest prices and rate windows."""

    def __init__(self, starting_cash_usd: Decimal, remembered_outcomes: int = 200_000) -> None:
        self.starting_cash_usd = starting_cash_usd
        self.realized_usd = ZERO
        self.lines: dict[tuple[str, str], Line] = {}
        self.pending: dict[uuid.UUID, PendingOrder] = {}
        self.closed: OrderedDict[uuid.UUID, None] = OrderedDict()
        """The newest `remembered_outcomes` intents whose outcome (fill or executor rejection) has
        been applied, oldest first: a redelivered or replayed outcome among them is booked once.
        Bounded, so the gate's memory does not grow with the desk's history."""
        self.remembered_outcomes = remembered_outcomes
        self.prices: dict[str, tuple[Decimal, datetime]] = {}
        self._realized_by_day: defaultdict[date, Decimal] = defaultdict(Decimal)
        self._rates: defaultdict[str, list[datetime]] = defaultdict(list)
        """Per account, the intent times of the last second, sorted."""

    # -- prices --------------------------------------------------------------------------------

    def mark(self, symbol: str, price: Decimal, observed_at: datetime) -> None:
        """Keep `price` as the symbol's latest unless a newer observation is already held."""
        held = self.prices.get(symbol)
        if held is None or observed_at >= held[1]:
            self.prices[symbol] = (price, observed_at)

    def latest(self, symbol: str) -> tuple[Decimal, datetime] | None:
        """Return the latest (price, observed_at) of `symbol`, if any tick was seen."""
        return self.prices.get(symbol)

    # -- approvals and outcomes ----------------------------------------------------------------

    def approve(self, intent: TradeIntent) -> bool:
        """Count an approved intent as pending; False if it is already pending or booked."""
        if intent.intent_id in self.closed or intent.intent_id in self.pending:
            return False
        order = PendingOrder(intent.account, intent.symbol, intent.side, intent.quantity)
        self.pending[intent.intent_id] = order
        line = self._line(intent.account, intent.symbol)
        if intent.side is Side.BUY:
            line.pending_buy += intent.quantity
        else:
            line.pending_sell += intent.quantity
        return True

    def apply_approved(self, event: RiskApproved) -> bool:
        """Apply a replayed approval."""
        return self.approve(event.intent)

    def apply_fill(self, event: OrderFilled) -> bool:
        """Move the intent from pending to the position and book its P&L; False if seen before."""
        if not self._close(event.intent_id):
            return False
        intent = event.intent
        line = self._line(intent.account, intent.symbol)
        realized = line.book(signed(intent.side, event.fill_quantity), event.fill_price)
        realized -= event.fee
        self.realized_usd += realized
        self._realized_by_day[event.ts.astimezone(UTC).date()] += realized
        return True

    def apply_order_rejected(self, event: OrderRejected) -> bool:
        """Release the intent's pending exposure; False if its outcome was seen before."""
        return self._close(event.intent_id)

    def _close(self, intent_id: uuid.UUID) -> bool:
        if intent_id in self.closed:
            return False
        self.closed[intent_id] = None
        if len(self.closed) > self.remembered_outcomes:
            self.closed.popitem(last=False)
        order = self.pending.pop(intent_id, None)
        if order is not None:
            line = self._line(order.account, order.symbol)
            if order.side is Side.BUY:
                line.pending_buy -= order.quantity
            else:
                line.pending_sell -= order.quantity
        return True

    # -- rate windows --------------------------------------------------------------------------

    def record_intent(self, account: str, at: datetime) -> int:
        """Count one intent of `account` at `at`; return how many fall in the 1 s up to `at`."""
        window = self._rates[account]
        insort(window, at)
        cut = bisect_right(window, at - RATE_WINDOW)
        if cut:
            del window[:cut]  # older than any window still to be asked about (times mostly rise)
        return bisect_right(window, at)

    # -- what the checks read ------------------------------------------------------------------

    def line(self, account: str, symbol: str) -> Line:
        """Return a copy of one line (an empty one if never traded)."""
        held = self.lines.get((account, symbol))
        return Line(**vars(held)) if held else Line()

    def realized_on(self, day: date) -> Decimal:
        """Return the realized P&L booked on `day` (UTC)."""
        return self._realized_by_day.get(day, ZERO)

    def equity_usd(self) -> Decimal:
        """Return starting cash + realized P&L + unrealized P&L at the latest ticks."""
        unrealized = ZERO
        for (_account, symbol), line in self.lines.items():
            mark = self.prices.get(symbol)
            if mark is not None and line.position:
                unrealized += line.position * (mark[0] - line.avg_price)
        return self.starting_cash_usd + self.realized_usd + unrealized

    def view(self, intent: TradeIntent, price: Decimal | None, today: date) -> ExposureView:
        """Return the book's numbers for `intent`, its symbol priced at `price`."""
        own = self.line(intent.account, intent.symbol)
        symbol_before = symbol_after = gross_before = ZERO
        for (_account, symbol), line in self.lines.items():
            mark = self._price_of(symbol, line, price if symbol == intent.symbol else None)
            before = line.worst_quantity() * mark
            gross_before += before
            if symbol == intent.symbol:
                symbol_before += before
                symbol_after += before
        order_price = price if price is not None else self._price_of(intent.symbol, own, None)
        added = (
            own.worst_quantity(intent.side, intent.quantity) - own.worst_quantity()
        ) * order_price
        realized_today = self.realized_on(today)
        return ExposureView(
            position=own.position,
            pending_buy=own.pending_buy,
            pending_sell=own.pending_sell,
            symbol_gross_before_usd=symbol_before,
            symbol_gross_after_usd=symbol_after + added,
            gross_before_usd=gross_before,
            gross_after_usd=gross_before + added,
            equity_usd=self.equity_usd(),
            start_of_day_equity_usd=self.starting_cash_usd + self.realized_usd - realized_today,
            realized_today_usd=realized_today,
        )

    def _price_of(self, symbol: str, line: Line, override: Decimal | None) -> Decimal:
        if override is not None:
            return override
        mark = self.prices.get(symbol)
        return mark[0] if mark is not None else line.avg_price

    def _line(self, account: str, symbol: str) -> Line:
        return self.lines.setdefault((account, symbol), Line())
