"""Reading the ledger (for the CLI and the audit), and recomputing it from fills alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agents.ledger.booking import (
    AccountKind,
    Position,
    book_fill,
    cash_changes,
    ledger_account,
    opening_lines,
    plain,
)
from agents.ledger.errors import BookingError
from contracts import OrderFilled


@dataclass(frozen=True)
class CashBalance:
    """One account's cash in one currency."""

    account: str
    currency: str
    balance: Decimal

    def to_json(self) -> dict[str, str]:
        return {"account": self.account, "currency": self.currency, "balance": plain(self.balance)}


PositionBook = dict[tuple[str, str], Position]
"""(account, symbol) -> position."""
CashBook = dict[tuple[str, str], Decimal]
"""(account, currency) -> balance."""


async def positions(conn: Any, account: str | None = None) -> list[Position]:
    """Return the positions Postgres holds (flat ones included), by account and symbol."""
    rows = await conn.fetch(
        """
        SELECT account, symbol, currency, quantity, avg_cost, cost_basis, realized_pnl
        FROM positions WHERE $1::text IS NULL OR account = $1 ORDER BY account, symbol
        """,
        account,
    )
    return [Position(**dict(row)) for row in rows]


async def cash(conn: Any, account: str | None = None) -> list[CashBalance]:
    """Return the cash balances Postgres holds, by account and currency."""
    rows = await conn.fetch(
        """
        SELECT account, currency, balance
        FROM cash WHERE $1::text IS NULL OR account = $1 ORDER BY account, currency
        """,
        account,
    )
    return [CashBalance(**dict(row)) for row in rows]


def recompute_from_fills(
    fills: Iterable[OrderFilled], starting_cash: Mapping[str, Decimal]
) -> tuple[PositionBook, CashBook]:
    """Return the positions and cash that `fills` imply, from `starting_cash` (account -> USD).

    Books like the ledger: each intent once (a repeated fill is ignored), and a fill the ledger
    would refuse (`BookingError`) changes nothing. Give the fills in the ledger's booking order
    (`journal_seq`, which `LedgerPosted` carries with the fill's id as `causation_id`):
    quantities and cash do not depend on the order, average cost and realized P&L do.
    """
    book: PositionBook = {}
    balances: CashBook = {}

    def add_cash(lines: Any) -> None:
        for key, change in cash_changes(lines).items():
            balances[key] = balances.get(key, Decimal(0)) + change

    for account, amount in starting_cash.items():
        if amount != 0:
            add_cash(opening_lines(account, amount))
    seen: set[uuid.UUID] = set()
    for fill in fills:
        if fill.intent_id in seen:
            continue
        key = (fill.intent.account, fill.intent.symbol)
        try:
            booking = book_fill(book.get(key), fill)
        except BookingError:
            continue
        seen.add(fill.intent_id)
        book[key] = booking.position
        add_cash(booking.lines)
    return book, balances


async def verify_balances(conn: Any) -> list[str]:
    """Return where the positions and cash tables disagree with the journal's lines."""
    problems: list[str] = []
    sums = {
        (row["ledger_account"], row["currency"]): row["balance"]
        for row in await conn.fetch("SELECT ledger_account, currency, balance FROM ledger_balances")
    }
    for held in await cash(conn):
        name = ledger_account(held.account, AccountKind.CASH, held.currency)
        journal = sums.get((name, held.currency), Decimal(0))
        if journal != held.balance:
            problems.append(
                f"cash {held.account} {held.currency}: the table holds {held.balance}, "
                f"the journal's lines sum to {journal}"
            )
    for pos in await positions(conn):
        checks = (
            ("quantity", pos.quantity, AccountKind.POSITION, pos.symbol),
            ("cost_basis", pos.cost_basis, AccountKind.COST, pos.currency),
        )
        for field, value, kind, unit in checks:
            name = ledger_account(pos.account, kind, pos.symbol)
            journal = sums.get((name, unit), Decimal(0))
            if journal != value:
                problems.append(
                    f"position {pos.account} {pos.symbol}: the table's {field} is {value}, "
                    f"the journal's lines sum to {journal}"
                )
    return problems
