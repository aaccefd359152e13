"""Market hours from exchange_calendars with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from agents.risk.calendar import MarketHours, UnknownCalendar

NEW_YORK = ZoneInfo("America/New_York")
SATURDAY = datetime(2024, 6, 8, 15, 0, tzinfo=NEW_YORK)
WEDNESDAY_3PM = datetime(2024, 6, 5, 15, 0, tzinfo=NEW_YORK)


def test_xnys_on_a_saturday_is_closed() -> None:
    assert MarketHours(clock=lambda: SATURDAY).is_open("XNYS") is False


def test_xnys_on_a_weekday_at_3pm_new_york_is_open() -> None:
    assert MarketHours(clock=lambda: WEDNESDAY_3PM).is_open("XNYS") is True


def test_xnys_after_the_4pm_close_is_closed() -> None:
    hours = MarketHours()
    assert hours.is_open("XNYS", datetime(2024, 6, 5, 16, 0, tzinfo=NEW_YORK)) is False


def test_always_open_calendar_is_open_on_a_saturday() -> None:
    assert MarketHours(clock=lambda: SATURDAY).is_open("24/7") is True


def test_minute_outside_the_calendar_bounds_counts_as_closed() -> None:
    assert MarketHours().is_open("XNYS", datetime(2199, 1, 5, 15, 0, tzinfo=UTC)) is False


def test_unknown_calendar_code_fails_at_preload_with_the_code_named() -> None:
    with pytest.raises(UnknownCalendar, match="'NOPE'"):
        MarketHours().preload(["XNYS", "NOPE"])


def test_calendar_is_built_once_and_answers_are_cached_per_minute() -> None:
    # Arrange
    hours = MarketHours(clock=lambda: WEDNESDAY_3PM)
    hours.preload(["XNYS", "24/7"])
    built = hours._calendars["XNYS"]

    # Act
    answers = [hours.is_open("XNYS") for _ in range(3)]

    # Assert
    assert answers == [True, True, True]
    assert hours._calendars == {"XNYS": built}
    assert len(hours._answers) == 1
