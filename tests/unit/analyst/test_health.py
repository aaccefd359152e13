"""Provider health: the circuit breaker and the daily token budget."""

from __future__ import annotations

from datetime import date

from agents.analyst.health import BUDGET_EXHAUSTED, CIRCUIT_OPEN, ProviderHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_after_five_failures_in_a_row_and_probes_after_cooldown() -> None:
    clock = Clock()
    health = ProviderHealth(max_tokens_per_day=1000, clock=clock)

    for _ in range(4):
        health.record_call(ok=False)
    assert health.skip_reason() is None
    health.record_call(ok=False)
    assert health.skip_reason() == CIRCUIT_OPEN and health.mode == "degraded"

    clock.now += 60.0
    assert health.skip_reason() is None  # the next batch probes the provider
    health.record_call(ok=True)
    assert health.consecutive_failures == 0 and health.open_until is None


def test_a_success_resets_the_failure_count() -> None:
    health = ProviderHealth(max_tokens_per_day=1000)
    for _ in range(4):
        health.record_call(ok=False)
    health.record_call(ok=True)
    health.record_call(ok=False)

    assert health.skip_reason() is None and health.consecutive_failures == 1


def test_budget_spent_skips_the_provider_until_the_next_utc_day() -> None:
    day = [date(2025, 1, 6)]
    health = ProviderHealth(max_tokens_per_day=1000, today=lambda: day[0])

    health.add_tokens(600)
    assert health.skip_reason() is None
    health.add_tokens(400)
    assert health.skip_reason() == BUDGET_EXHAUSTED
    assert health.snapshot()["tokens_today"] == 1000

    day[0] = date(2025, 1, 7)
    assert health.skip_reason() is None and health.tokens_today == 0


def test_after_the_cooldown_one_probe_at_a_time_and_its_answer_decides() -> None:
    clock = Clock()
    health = ProviderHealth(max_tokens_per_day=1000, clock=clock)
    for _ in range(5):
        health.record_call(ok=False)
    clock.now += 60.0

    assert health.skip_reason() is None and health.start_call()  # the probe
    assert health.skip_reason() == CIRCUIT_OPEN  # the others while it is out
    health.record_call(ok=False)
    assert health.skip_reason() == CIRCUIT_OPEN  # open again for a cooldown
    clock.now += 60.0
    assert health.start_call()
    health.record_call(ok=True)
    assert health.skip_reason() is None and not health.start_call()


def test_a_probe_that_was_throttled_leaves_the_next_call_to_probe() -> None:
    clock = Clock()
    health = ProviderHealth(max_tokens_per_day=1000, clock=clock)
    for _ in range(5):
        health.record_call(ok=False)
    clock.now += 60.0
    assert health.start_call()

    health.end_probe()

    assert health.skip_reason() is None and health.start_call()
