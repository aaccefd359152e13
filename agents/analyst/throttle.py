"""Throttling: a provider's 429 is a request to wait, not a failure.

`throttled_wait` tells a 429 from any other error and says how long to wait before the retry:
the provider's `Retry-After` (or `retry-after-ms`) plus a little jitter, so calls throttled
together do not all return at once; without one, exponential backoff with full jitter. A 429
that says the account's quota is spent (`insufficient_quota`) is an error: waiting will not help.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

TOO_MANY_REQUESTS = 429
QUOTA_CODES = frozenset({"insufficient_quota"})
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 8.0
JITTER_SHARE = 0.2
"""Up to this share of a `Retry-After` (and at least 0.1 s) is added at random."""


def retry_after_s(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Return the wait a response asks for (`retry-after-ms`, then `retry-after` in seconds or
    as an HTTP date), or None when it names none."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after-ms":
                continue
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                return None
            seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return None


def is_throttle(exc: BaseException) -> bool:
    """True for a 429 asking us to slow down (not a spent quota)."""
    if getattr(exc, "status_code", None) != TOO_MANY_REQUESTS:
        return False
    code = getattr(exc, "code", None)
    return code not in QUOTA_CODES


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    response: Any = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


class ThrottledOut(Exception):
    """The provider kept throttling a review past the retries allowed (or asked for too long)."""


@dataclass(frozen=True)
class ThrottlePolicy:
    """How a throttled review is retried."""

    retries: int = 6
    """Retries after the first attempt."""
    max_wait_s: float = 60.0
    """The longest wait honoured; a longer `Retry-After` ends the retries."""
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def wait_s(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds to wait before retry `attempt` (1-based) of a throttled call, or None when
        `exc` is no throttle or no retry is left (the caller then reports a failure)."""
        if not is_throttle(exc) or attempt > self.retries:
            return None
        asked = retry_after_s(_headers(exc))
        if asked is None:
            return self.rand() * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1))
        if asked > self.max_wait_s:
            return None
        return asked + self.rand() * max(0.1, JITTER_SHARE * asked)
