"""Whether the configured model should be called at all: a circuit breaker and a token budget.

After `failure_threshold` consecutive failed calls (timeouts, errors) the circuit opens and the
provider is not called for `cooldown_s`. Then one call at a time probes it (half open): a probe
that is answered closes the circuit, one that fails opens it again; while a probe is out, the
other reviews skip the provider as before. A throttled call (429) is neither: it says nothing
about the provider's health and never counts towards opening the circuit. The daily token
budget (UTC day) stops calls once spent. Either way the offline reviewer stands in and the
analyses are marked degraded, with reason `circuit_open` or `budget_exhausted`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from agents.analyst import metrics

CIRCUIT_OPEN = "circuit_open"
BUDGET_EXHAUSTED = "budget_exhausted"


def _utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass
class ProviderHealth:
    """Failure and token accounting of one remote provider (not thread-safe: one event loop)."""

    max_tokens_per_day: int
    failure_threshold: int = 5
    cooldown_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    today: Callable[[], date] = _utc_today
    consecutive_failures: int = 0
    open_until: float | None = None
    probing: bool = False
    """A half-open circuit's probe call is out."""
    tokens_today: int = 0
    last_degraded_reason: str | None = None
    _day: date | None = field(default=None, repr=False)

    def _roll_day(self) -> None:
        day = self.today()
        if day != self._day:
            self._day, self.tokens_today = day, 0

    @property
    def half_open(self) -> bool:
        """The cooldown is over but no call has succeeded since the circuit opened."""
        return self.open_until is not None and self.clock() >= self.open_until

    def skip_reason(self) -> str | None:
        """Return why the provider must not be called now, or None to call it."""
        self._roll_day()
        if self.tokens_today >= self.max_tokens_per_day:
            return BUDGET_EXHAUSTED
        if self.open_until is not None and (self.clock() < self.open_until or self.probing):
            return CIRCUIT_OPEN
        return None

    def start_call(self) -> bool:
        """A call goes out now (after `skip_reason` said None); True if it is the probe."""
        if self.half_open and not self.probing:
            self.probing = True
            return True
        return False

    def record_call(self, ok: bool) -> None:
        """Count one call's outcome; open the circuit after too many failures in a row."""
        self.probing = False
        if ok:
            self.consecutive_failures, self.open_until = 0, None
            return
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            self.open_until = self.clock() + self.cooldown_s

    def end_probe(self) -> None:
        """A probe ended without telling (throttled, cancelled): the next call probes again."""
        self.probing = False

    def add_tokens(self, count: int) -> None:
        self._roll_day()
        self.tokens_today += max(0, count)

    def budget_used(self) -> float:
        """Tokens counted against today's budget (the gauge's reading)."""
        self._roll_day()
        return float(self.tokens_today)

    def watch(self) -> None:
        """Export today's tokens and the budget as gauges, read at each scrape."""
        metrics.BUDGET_USED.set_function(self.budget_used)
        metrics.BUDGET.set(self.max_tokens_per_day)

    @property
    def mode(self) -> str:
        """`normal`, or `degraded` while the provider is skipped or the last review fell back."""
        if self.skip_reason() is not None or self.last_degraded_reason is not None:
            return "degraded"
        return "normal"

    def snapshot(self) -> dict[str, Any]:
        """Return what `/status` shows."""
        reason = self.skip_reason()
        return {
            "mode": self.mode,
            "consecutive_failures": self.consecutive_failures,
            "skipping": reason,
            "last_degraded_reason": self.last_degraded_reason,
            "tokens_today": self.tokens_today,
            "max_tokens_per_day": self.max_tokens_per_day,
        }
