"""The window of model calls: slots first come first served, AIMD on throttling."""

from __future__ import annotations

import asyncio

import pytest

from agents.analyst.window import CallWindow


async def test_a_call_waits_for_a_free_slot_and_gets_it_in_arrival_order() -> None:
    window = CallWindow(2, latency_s=1.0)
    await window.acquire()
    await window.acquire()
    order: list[str] = []

    async def take(name: str) -> None:
        await window.acquire()
        order.append(name)

    first, second = asyncio.create_task(take("first")), asyncio.create_task(take("second"))
    await asyncio.sleep(0)
    assert window.waiting == 2 and order == []

    window.release()
    await asyncio.sleep(0)
    assert order == ["first"]
    window.release()
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and window.in_flight == 2


def test_a_429_halves_the_window_once_per_round_and_each_answer_widens_it_by_one() -> None:
    window = CallWindow(16, latency_s=1.0)
    taken_in = window.round

    for _ in range(10):  # ten calls started together, all throttled
        window.throttle(taken_in)
    assert window.limit == 8 and window.throttled == 10

    window.throttle(window.round)  # a call started after the halving
    assert window.limit == 4
    for _ in range(20):
        window.answered(1.0)
    assert window.limit == 16  # never above the configured maximum


def test_the_window_never_closes() -> None:
    window = CallWindow(2, latency_s=1.0)
    for _ in range(5):
        window.throttle(window.round)

    assert window.limit == 1


async def test_a_narrower_window_lets_no_new_call_in_until_calls_end() -> None:
    window = CallWindow(4, latency_s=1.0)
    rounds = [await window.acquire() for _ in range(4)]
    window.throttle(rounds[0])  # limit 2 with 4 in flight
    waiter = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)

    window.release()
    window.release()
    await asyncio.sleep(0)
    assert not waiter.done()
    window.release()
    await asyncio.sleep(0)
    assert waiter.done() and window.in_flight == 2


async def test_a_cancelled_waiter_gives_back_a_slot_granted_to_it() -> None:
    window = CallWindow(1, latency_s=1.0)
    await window.acquire()
    waiter = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)

    window.release()  # granted to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert window.in_flight == 0
    assert await asyncio.wait_for(window.acquire(), 1) == window.round


def test_latency_is_a_moving_average_of_ended_calls() -> None:
    window = CallWindow(4, latency_s=20.0)
    for _ in range(200):
        window.answered(1.0)

    assert window.latency_s == pytest.approx(1.0, abs=0.01)
