"""Properties over random fill sequences: every posting balances per currency, the positions are
what the journal lines add up to, and recomputing from fills equals booking one by one."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.ledger.booking import AccountKind, Position, book_fill, imbalances, split_ledger_account
from agents.ledger.queries import recompute_from_fills
from contracts import JournalLine, OrderFilled, Side
from tests.support.events import make_fill

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = {"paper-1": Decimal("1000000"), "paper-2": Decimal("2500.50")}

fills_strategy = st.lists(
    st.builds(
        make_fill,
        side=st.sampled_from([Side.BUY, Side.SELL]),
        quantity=st.decimals(Decimal("0.0001"), Decimal("5000"), places=4),
        price=st.decimals(Decimal("0.000001"), Decimal("70000"), places=6),
        fee=st.decimals(Decimal("0"), Decimal("25"), places=2),
        symbol=st.sampled_from(["AAPL", "BTC-USD"]),
        account=st.sampled_from(list(START)),
    ),
    max_size=40,
)


def stored(position: Position) -> Position:
    """Round-trip a position through its text form, as NUMERIC columns do."""
    return Position(
        position.account,
        position.symbol,
        position.currency,
        Decimal(str(position.quantity)),
        Decimal(str(position.avg_cost)),
        Decimal(str(position.cost_basis)),
        Decimal(str(position.realized_pnl)),
    )


def book_incrementally(
    fills: list[OrderFilled],
) -> tuple[dict[tuple[str, str], Position], list[JournalLine]]:
    book: dict[tuple[str, str], Position] = {}
    journal: list[JournalLine] = []
    for fill in fills:
        key = (fill.intent.account, fill.intent.symbol)
        booking = book_fill(book.get(key), fill)
        assert imbalances(booking.lines) == {}, booking.lines
        book[key] = stored(booking.position)
        journal.extend(booking.lines)
    return book, journal


def balance(journal: list[JournalLine], account: str, kind: AccountKind, unit: str) -> Decimal:
    total = Decimal(0)
    for line in journal:
        if split_ledger_account(line.account) == (account, kind, unit):
            total += line.amount
    return total


@PROPERTY
@given(fills_strategy)
def test_every_posting_balances_per_currency_and_recompute_equals_incremental(
    fills: list[OrderFilled],
) -> None:
    incremental, journal = book_incrementally(fills)

    recomputed, cash = recompute_from_fills(fills, START)

    assert recomputed == incremental
    for account, start in START.items():
        assert cash[account, "USD"] == start + balance(journal, account, AccountKind.CASH, "USD")


@PROPERTY
@given(fills_strategy)
def test_positions_equal_what_the_journal_lines_add_up_to(fills: list[OrderFilled]) -> None:
    book, journal = book_incrementally(fills)

    realized_total = {account: Decimal(0) for account in START}
    for (account, symbol), pos in book.items():
        assert pos.quantity == balance(journal, account, AccountKind.POSITION, symbol)
        assert pos.cost_basis == balance(journal, account, AccountKind.COST, symbol)
        assert pos.avg_cost >= 0
        if pos.quantity == 0:
            assert pos.cost_basis == 0
            assert pos.avg_cost == 0
        assert pos.cost_basis * pos.quantity >= 0  # the basis has the position's sign
        realized_total[account] += pos.realized_pnl
    for account, total in realized_total.items():
        assert total == -balance(journal, account, AccountKind.REALIZED_PNL, "USD")


@PROPERTY
@given(fills_strategy)
def test_a_repeated_fill_is_booked_once_by_recompute(fills: list[OrderFilled]) -> None:
    once = recompute_from_fills(fills, START)

    twice = recompute_from_fills([f for fill in fills for f in (fill, fill)], START)

    assert twice == once
