"""Booking math: lines per fill, average cost, realized P&L, flips, fees, rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.ledger.booking import MONEY_PLACES, Position, book_fill, imbalances, opening_lines
from agents.ledger.errors import BookingError
from contracts import JournalLine
from tests.support.events import make_fill

D = Decimal


def lines_by_account(lines: tuple[JournalLine, ...]) -> dict[str, tuple[str, Decimal]]:
    return {line.account: (line.currency, line.amount) for line in lines}


def book_all(*fills_args: tuple[str, str, str, str]) -> Position:
    position: Position | None = None
    for side, qty, price, fee in fills_args:
        booking = book_fill(position, make_fill(side, qty, price, fee))
        assert imbalances(booking.lines) == {}
        position = booking.position
    assert position is not None
    return position


def test_buy_from_flat_books_cash_cost_fees_and_units_balanced_per_currency() -> None:
    booking = book_fill(None, make_fill("buy", "10", "190", "0.19"))

    assert lines_by_account(booking.lines) == {
        "paper-1:cash:USD": ("USD", D("-1900.19")),
        "paper-1:cost:AAPL": ("USD", D("1900")),
        "paper-1:fees:USD": ("USD", D("0.19")),
        "paper-1:position:AAPL": ("AAPL", D("10")),
        "paper-1:trading:AAPL": ("AAPL", D("-10")),
    }
    assert imbalances(booking.lines) == {}
    assert booking.position == Position("paper-1", "AAPL", "USD", D(10), D(190), D(1900), D(0))


def test_second_buy_weights_the_average_cost() -> None:
    position = book_all(("buy", "10", "190", "0"), ("buy", "30", "200", "0"))

    assert position.quantity == 40
    assert position.avg_cost == D("197.5")
    assert position.cost_basis == D("7900")


def test_partial_sell_realizes_pnl_at_average_cost_and_keeps_it() -> None:
    bought = book_fill(None, make_fill("buy", "10", "190", "0.19")).position

    booking = book_fill(bought, make_fill("sell", "4", "200", "0.08"))

    assert lines_by_account(booking.lines) == {
        "paper-1:cash:USD": ("USD", D("799.92")),
        "paper-1:cost:AAPL": ("USD", D("-760")),
        "paper-1:fees:USD": ("USD", D("0.08")),
        "paper-1:realized-pnl:USD": ("USD", D("-40")),
        "paper-1:position:AAPL": ("AAPL", D("-4")),
        "paper-1:trading:AAPL": ("AAPL", D("4")),
    }
    assert booking.realized == D("40")
    assert booking.position.quantity == 6
    assert booking.position.avg_cost == D("190")
    assert booking.position.cost_basis == D("1140")
    assert booking.position.realized_pnl == D("40")


def test_realized_pnl_is_gross_of_fees() -> None:
    position = book_all(("buy", "10", "100", "5"), ("sell", "10", "100", "5"))

    assert position.realized_pnl == 0
    assert position.quantity == 0


def test_full_close_releases_the_whole_basis_even_when_average_was_rounded() -> None:
    position = book_all(("buy", "1", "100", "0"), ("buy", "2", "100.01", "0"))
    assert position.avg_cost == D("100.0066666667")  # 300.02 / 3, rounded to 10 places

    closed = book_fill(position, make_fill("sell", "3", "101", "0"))

    assert closed.position.quantity == 0
    assert closed.position.cost_basis == 0
    assert closed.position.avg_cost == 0
    assert closed.realized == D("2.98")  # 303 - 300.02, exactly


def test_sell_through_zero_flips_to_short_at_the_fill_price() -> None:
    long = book_fill(None, make_fill("buy", "10", "190", "0")).position

    flip = book_fill(long, make_fill("sell", "15", "200", "1"))

    assert flip.realized == D("100")
    assert flip.position.quantity == -5
    assert flip.position.avg_cost == D("200")
    assert flip.position.cost_basis == D("-1000")
    assert lines_by_account(flip.lines)["paper-1:cost:AAPL"] == ("USD", D("-2900"))
    assert imbalances(flip.lines) == {}


def test_short_then_cover_realizes_the_price_drop() -> None:
    short = book_fill(None, make_fill("sell", "5", "200", "0")).position
    assert (short.quantity, short.avg_cost, short.cost_basis) == (D(-5), D(200), D(-1000))

    covered = book_fill(short, make_fill("buy", "5", "190", "0"))

    assert covered.realized == D("50")
    assert covered.position.quantity == 0
    assert covered.position.cost_basis == 0


def test_buy_through_zero_flips_short_to_long() -> None:
    position = book_all(("sell", "5", "200", "0"), ("buy", "8", "210", "0"))

    assert position.realized_pnl == D("-50")
    assert position.quantity == 3
    assert position.avg_cost == D("210")
    assert position.cost_basis == D("630")


def test_adding_to_a_short_weights_its_average() -> None:
    position = book_all(("sell", "5", "200", "0"), ("sell", "5", "210", "0"))

    assert position.quantity == -10
    assert position.avg_cost == D("205")
    assert position.cost_basis == D("-2050")


def test_zero_fee_and_zero_pnl_lines_are_left_out() -> None:
    booking = book_fill(None, make_fill("buy", "1", "50", "0"))

    accounts = {line.account for line in booking.lines}
    assert "paper-1:fees:USD" not in accounts
    assert "paper-1:realized-pnl:USD" not in accounts


def test_amounts_beyond_ten_places_are_rounded_and_still_balance() -> None:
    booking = book_fill(None, make_fill("buy", "0.123456789", "1.23456789", "0.01"))

    cash = lines_by_account(booking.lines)["paper-1:cash:USD"][1]
    assert cash == D("-0.1624157875")  # 0.15241578750190521 rounded, plus the fee
    assert -cash.as_tuple().exponent <= MONEY_PLACES  # type: ignore[operator]
    assert imbalances(booking.lines) == {}


def test_fill_of_zero_quantity_is_refused_as_invalid() -> None:
    fill = make_fill("buy", "1", "10").model_copy(update={"fill_quantity": D(0)})

    with pytest.raises(BookingError) as caught:
        book_fill(None, fill)

    assert caught.value.code == "invalid_fill"


def test_fill_in_another_currency_than_the_position_is_refused() -> None:
    held = book_fill(None, make_fill("buy", "1", "10")).position

    with pytest.raises(BookingError) as caught:
        book_fill(held, make_fill("buy", "1", "10", currency="EUR"))

    assert caught.value.code == "currency_mismatch"


def test_amount_beyond_the_wire_bound_is_refused() -> None:
    fill = make_fill("buy", "1000000000", "1000000000")

    with pytest.raises(BookingError) as caught:
        book_fill(None, fill)

    assert caught.value.code == "amount_out_of_range"


def test_opening_lines_pay_cash_in_against_equity() -> None:
    lines = opening_lines("paper-1", D("1000000"))

    assert lines_by_account(lines) == {
        "paper-1:cash:USD": ("USD", D("1000000")),
        "paper-1:equity:USD": ("USD", D("-1000000")),
    }


def test_imbalances_names_the_currency_that_does_not_sum_to_zero() -> None:
    lines = (
        JournalLine(account="a:cash:USD", currency="USD", amount=D("-1")),
        JournalLine(account="a:fees:USD", currency="USD", amount=D("0.5")),
        JournalLine(account="a:position:X", currency="X", amount=D("1")),
        JournalLine(account="a:trading:X", currency="X", amount=D("-1")),
    )

    assert imbalances(lines) == {"USD": D("-0.5")}


def test_lines_travel_as_valid_contract_amounts() -> None:
    booking = book_fill(None, make_fill("buy", "0.123456789", "1.23456789", "0.000000000000000001"))

    for line in booking.lines:
        assert JournalLine.model_validate_json(line.model_dump_json()) == line


def test_opening_with_more_than_eighteen_places_is_refused() -> None:
    with pytest.raises(BookingError) as caught:
        opening_lines("paper-1", D("1.0000000000000000001"))

    assert caught.value.code == "amount_out_of_range"
