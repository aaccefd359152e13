"""Throttling: Retry-After honoured with jitter, bounded retries, a spent quota is no throttle."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agents.analyst.throttle import ThrottlePolicy, is_throttle, retry_after_s


class HttpError(Exception):
    def __init__(self, status: int, headers: dict[str, str], code: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.code = code
        self.response = SimpleNamespace(headers=headers)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_milliseconds_seconds_or_as_a_date(
    headers: dict[str, str], seconds: float | None
) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT

    assert retry_after_s(headers, now=now) == seconds


def test_a_429_is_a_throttle_but_a_spent_quota_or_a_500_is_not() -> None:
    assert is_throttle(HttpError(429, {}, code="rate_limit_exceeded"))
    assert not is_throttle(HttpError(429, {}, code="insufficient_quota"))
    assert not is_throttle(HttpError(500, {"retry-after": "1"}))
    assert not is_throttle(TimeoutError())


def test_the_wait_is_the_retry_after_plus_bounded_jitter() -> None:
    low = ThrottlePolicy(rand=lambda: 0.0)
    high = ThrottlePolicy(rand=lambda: 0.999)
    exc = HttpError(429, {"retry-after": "10"})

    assert low.wait_s(exc, 1) == 10.0
    assert 10.0 < (high.wait_s(exc, 1) or 0) < 10.0 + 0.2 * 10 + 1e-9


def test_without_retry_after_backoff_grows_with_full_jitter() -> None:
    policy = ThrottlePolicy(retries=6, rand=lambda: 0.999)
    exc = HttpError(429, {})

    waits = [policy.wait_s(exc, attempt) or 0 for attempt in range(1, 7)]

    assert waits == sorted(waits) and waits[-1] <= 8.0


def test_retries_are_bounded_and_a_longer_wait_than_allowed_is_not_retried() -> None:
    policy = ThrottlePolicy(retries=2, max_wait_s=30.0, rand=lambda: 0.0)

    assert policy.wait_s(HttpError(429, {"retry-after": "1"}), 2) == 1.0
    assert policy.wait_s(HttpError(429, {"retry-after": "1"}), 3) is None
    assert policy.wait_s(HttpError(429, {"retry-after": "31"}), 1) is None
    assert policy.wait_s(HttpError(503, {"retry-after": "1"}), 1) is None
