"""Booking: a fill in, balanced journal lines and the new position out. Pure; no I/O.

Ledger accounts, for one trading account `A` (e.g. `paper-1`), a settlement currency `CCY`
and an instrument `SYM`:

    ledger account        unit  holds
    A:cash:CCY            CCY   cash at the broker
    A:equity:CCY          CCY   capital paid in (the opening posting credits it)
    A:cost:SYM            CCY   the position at cost, i.e. its cost basis (negative while short)
    A:fees:CCY            CCY   fees paid (an expense, debit)
    A:realized-pnl:CCY    CCY   realized P&L (income: a gain is a credit, a negative amount)
    A:position:SYM        SYM   units held (debit = long, credit = short)
    A:trading:SYM         SYM   the contra of the units: where they came from or went to

Amounts are signed, debit positive. Every posting balances per unit: the currency legs (cash,
cost, fees, realized P&L) sum to zero in `CCY`, and the instrument legs (position, trading) sum
to zero in `SYM`. So the balance of `A:position:SYM` is the position's quantity, the balance of
`A:cost:SYM` its cost basis, and `-A:realized-pnl:CCY` the realized P&L of all symbols.

Buy 10 AAPL @ 190, fee 0.19, then sell 4 @ 200, fee 0.08:

    A:cash:USD   -1900.19   A:cost:AAPL  +1900   A:fees:USD  +0.19
    A:position:AAPL  +10    A:trading:AAPL  -10
    A:cash:USD    +799.92   A:cost:AAPL   -760   A:fees:USD  +0.08   A:realized-pnl:USD  -40
    A:position:AAPL   -4    A:trading:AAPL   +4

Positions: the quantity is signed; the average cost is weighted on increases, unchanged on
reductions, and reset to the fill price when a fill opens a position or flips it through zero.
A reduction releases `avg_cost * quantity` of cost basis (the whole remaining basis when it
closes the position) and realizes the difference with the proceeds. Realized P&L is GROSS of
fees: fees are booked separately to `A:fees:CCY` (net P&L = realized P&L - fees).

Rounding: a money amount with more than 10 decimal places, and the average cost, are rounded
half-even to 10 places before the lines are built, so the lines always balance exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

from agents.ledger.errors import BookingError
from contracts import JournalLine, OrderFilled, Side

MONEY_PLACES = 10
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
WIRE_LIMIT = Decimal(10) ** 18
WIRE_PLACES = 18
"""Journal line amounts must stay below this magnitude, with at most these decimal places, to
travel as a contract `Amount`."""
_PRECISION = 80
_CURRENCY_RE = re.compile(r"[A-Z][A-Z0-9]{1,9}")
ZERO = Decimal(0)


def plain(value: Decimal) -> str:
    """Return `value` as plain digits, never in exponent form (`130000`, not `1.3E+5`)."""
    return format(value, "f")


class AccountKind(StrEnum):
    """The middle part of a ledger account name."""

    CASH = "cash"
    EQUITY = "equity"
    COST = "cost"
    FEES = "fees"
    REALIZED_PNL = "realized-pnl"
    POSITION = "position"
    TRADING = "trading"


def ledger_account(account: str, kind: AccountKind, unit: str) -> str:
    """Return the ledger account name, e.g. `paper-1:cash:USD`."""
    return f"{account}:{kind}:{unit}"


def split_ledger_account(name: str) -> tuple[str, AccountKind, str]:
    """Return (trading account, kind, unit) of a ledger account name."""
    account, kind, unit = name.split(":")
    return account, AccountKind(kind), unit


@dataclass(frozen=True)
class Position:
    """One account's holding of one instrument."""

    account: str
    symbol: str
    currency: str
    quantity: Decimal
    avg_cost: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal

    @classmethod
    def flat(cls, account: str, symbol: str, currency: str) -> Position:
        return cls(account, symbol, currency, ZERO, ZERO, ZERO, ZERO)

    def to_json(self) -> dict[str, str]:
        """Return the position with decimals as strings."""
        return {
            "account": self.account,
            "symbol": self.symbol,
            "currency": self.currency,
            "quantity": plain(self.quantity),
            "avg_cost": plain(self.avg_cost),
            "cost_basis": plain(self.cost_basis),
            "realized_pnl": plain(self.realized_pnl),
        }


@dataclass(frozen=True)
class Booking:
    """What one fill does to the ledger."""

    lines: tuple[JournalLine, ...]
    position: Position
    realized: Decimal
    """P&L realized by this fill, gross of its fee."""


def money(value: Decimal) -> Decimal:
    """Round to at most `MONEY_PLACES` decimal places (exact values are kept as they are)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -MONEY_PLACES:
        return value
    with localcontext(prec=_PRECISION, rounding=ROUND_HALF_EVEN):
        return value.quantize(MONEY_QUANTUM)


def _line(
    account: str, kind: AccountKind, unit: str, currency: str, amount: Decimal
) -> JournalLine:
    exponent = amount.as_tuple().exponent
    if abs(amount) >= WIRE_LIMIT or not isinstance(exponent, int) or exponent < -WIRE_PLACES:
        raise BookingError(
            "amount_out_of_range",
            f"{ledger_account(account, kind, unit)} would move {amount} {currency}, beyond the "
            f"journal's bounds (below {WIRE_LIMIT}, at most {WIRE_PLACES} decimal places); "
            "book it by hand",
        )
    # Within the wire's bounds by the check above: skip re-validating (the hot path of a batch).
    return JournalLine.model_construct(
        account=ledger_account(account, kind, unit), currency=currency, amount=amount
    )


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def _check_fill(fill: OrderFilled, before: Position) -> None:
    if fill.fill_quantity <= 0:
        raise BookingError(
            "invalid_fill", f"fill_quantity must be greater than zero, got {fill.fill_quantity}"
        )
    if not _CURRENCY_RE.fullmatch(fill.currency):
        raise BookingError(
            "invalid_fill", f"currency must be a code such as USD, got {fill.currency!r}"
        )
    if before.quantity != 0 and before.currency != fill.currency:
        raise BookingError(
            "currency_mismatch",
            f"{before.account} holds {before.symbol} in {before.currency}; a fill settled in "
            f"{fill.currency} cannot be averaged into it",
        )


def book_fill(position: Position | None, fill: OrderFilled) -> Booking:
    """Return the lines of `fill` and the position after it (`position` None = flat)."""
    intent = fill.intent
    account, symbol, ccy = intent.account, intent.symbol, fill.currency
    before = position or Position.flat(account, symbol, ccy)
    _check_fill(fill, before)
    qty, price, fee = fill.fill_quantity, fill.fill_price, fill.fee
    direction = 1 if intent.side is Side.BUY else -1
    held = before.quantity
    with localcontext(prec=_PRECISION, rounding=ROUND_HALF_EVEN):
        closing = min(qty, abs(held)) if held * direction < 0 else ZERO
        opening = qty - closing
        notional = money(qty * price)
        notional_close = money(closing * price)
        notional_open = notional - notional_close
        if closing == 0:
            released = ZERO
        elif closing == abs(held):
            released = before.cost_basis
        else:
            released = _sign(held) * money(before.avg_cost * closing)
        realized = _sign(held) * notional_close - released if closing else ZERO
        quantity = held + direction * qty
        cost_basis = before.cost_basis - released + direction * notional_open
        if quantity == 0:
            avg_cost = ZERO
        elif held == 0 or (closing and opening):  # opened, or flipped through zero
            avg_cost = price
        elif closing:  # reduced
            avg_cost = before.avg_cost
        else:  # increased
            avg_cost = money(abs(cost_basis) / abs(quantity))
        legs = (
            (AccountKind.CASH, ccy, ccy, -direction * notional - fee),
            (AccountKind.COST, symbol, ccy, direction * notional_open - released),
            (AccountKind.FEES, ccy, ccy, fee),
            (AccountKind.REALIZED_PNL, ccy, ccy, -realized),
            (AccountKind.POSITION, symbol, symbol, direction * qty),
            (AccountKind.TRADING, symbol, symbol, -direction * qty),
        )
    lines = tuple(_line(account, kind, unit, cur, amt) for kind, unit, cur, amt in legs if amt)
    after = Position(
        account=account,
        symbol=symbol,
        currency=ccy,
        quantity=quantity,
        avg_cost=avg_cost,
        cost_basis=cost_basis,
        realized_pnl=before.realized_pnl + realized,
    )
    return Booking(lines=lines, position=after, realized=realized)


def opening_lines(account: str, amount: Decimal, currency: str = "USD") -> tuple[JournalLine, ...]:
    """Return the opening posting's lines: cash paid in against equity."""
    return (
        _line(account, AccountKind.CASH, currency, currency, amount),
        _line(account, AccountKind.EQUITY, currency, currency, -amount),
    )


def imbalances(lines: Iterable[JournalLine]) -> dict[str, Decimal]:
    """Return each currency (unit) whose lines do not sum to zero, with the sum."""
    totals: dict[str, Decimal] = {}
    with localcontext(prec=_PRECISION):
        for line in lines:
            totals[line.currency] = totals.get(line.currency, ZERO) + line.amount
    return {currency: total for currency, total in totals.items() if total != 0}


def cash_changes(lines: Iterable[JournalLine]) -> dict[tuple[str, str], Decimal]:
    """Return the net change of each (trading account, currency) cash balance."""
    changes: dict[tuple[str, str], Decimal] = {}
    with localcontext(prec=_PRECISION):
        for line in lines:
            account, kind, unit = split_ledger_account(line.account)
            if kind is AccountKind.CASH:
                changes[account, unit] = changes.get((account, unit), ZERO) + line.amount
    return changes
