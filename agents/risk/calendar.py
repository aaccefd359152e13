"""Market hours of each instrument's venue, from `exchange_calendars`, with an injectable clock.

Building a calendar takes about 0.1 s and one `is_open_on_minute` call about 0.1 ms, so the
calendars are built once (`preload`, at start-up) and the answer is cached per
(calendar, minute). A minute outside the calendar's bounds (it covers about 20 years back and one
year ahead of when it was built) counts as closed: the gate refuses rather than guesses.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import exchange_calendars
from exchange_calendars.errors import MinuteOutOfBounds

from agents.common.config import ALWAYS_OPEN
from contracts import utc_now

log = logging.getLogger("tradeops.risk.calendar")

Clock = Callable[[], datetime]

_MAX_CACHED_MINUTES = 4096


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence exchange_calendars' own use of pandas APIs that pandas deprecates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class UnknownCalendar(ValueError):
    """An instrument names a calendar `exchange_calendars` does not know."""


class MarketHours:
    """Whether a venue is open now (or at a given time), one cached calendar per venue."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self._calendars: dict[str, Any] = {}
        self._answers: dict[tuple[str, datetime], bool] = {}

    def preload(self, codes: Iterable[str]) -> None:
        """Build the calendars of `codes` now (slow); raise UnknownCalendar for a bad code."""
        for code in codes:
            if code != ALWAYS_OPEN:
                self._calendar(code)

    def is_open(self, code: str, at: datetime | None = None) -> bool:
        """Return whether the venue `code` is open at `at` (default: the clock's now)."""
        if code == ALWAYS_OPEN:
            return True
        minute = (at or self.clock()).astimezone(UTC).replace(second=0, microsecond=0)
        key = (code, minute)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._ask(code, minute)
            if len(self._answers) >= _MAX_CACHED_MINUTES:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _ask(self, code: str, minute: datetime) -> bool:
        calendar = self._calendar(code)
        try:
            with _quiet():
                return bool(calendar.is_open_on_minute(minute))
        except MinuteOutOfBounds:
            log.error("%s is outside the %s calendar's bounds; treating it as closed", minute, code)
            return False

    def _calendar(self, code: str) -> Any:
        calendar = self._calendars.get(code)
        if calendar is None:
            try:
                with _quiet():
                    calendar = exchange_calendars.get_calendar(code)
            except exchange_calendars.errors.InvalidCalendarName as exc:
                raise UnknownCalendar(
                    f"unknown market calendar {code!r}: use an exchange_calendars code such as "
                    f"'XNYS' or {ALWAYS_OPEN!r} in the instrument's `calendar` setting"
                ) from exc
            self._calendars[code] = calendar
        return calendar
