"""The sliding window of model calls: how many may be in flight, adapted to the provider.

A call takes a slot when one is free (first come, first served) and gives it back when it ends,
so a slow call holds only its own slot. The window's size follows AIMD: a throttled call (429)
halves it, once per round of calls (a burst of 429s from calls started together halves it once),
and each answered call widens it by one, up to the configured maximum. The window also keeps an
average of how long an answered call takes, from which the analyst sizes what it fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

LATENCY_WEIGHT = 0.05
"""Weight of the newest call in the moving average of call latency."""


class CallWindow:
    """Slots for model calls (not thread-safe: one event loop)."""

    def __init__(self, max_calls: int, latency_s: float) -> None:
        if max_calls < 1:
            raise ValueError(f"a call window needs at least one slot, not {max_calls}")
        self.max_calls = max_calls
        self.limit = max_calls
        """Calls allowed in flight now (1 .. max_calls)."""
        self.in_flight = 0
        self.round = 0
        """Increases at every halving: a 429 of a call started in an earlier round is old news."""
        self.latency_s = latency_s
        """Moving average of an answered call's duration (starts at the configured guess)."""
        self.throttled = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return sum(1 for fut in self._waiting if not fut.done())

    async def acquire(self) -> int:
        """Wait for a slot; return the round it was taken in."""
        if not self._waiting and self.in_flight < self.limit:
            self.in_flight += 1
            return self.round
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just before the cancellation: hand it on
            raise
        return self.round

    def release(self) -> None:
        """Give a slot back."""
        self.in_flight -= 1
        self._grant()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold a slot for the duration of the block; yields the round it was taken in."""
        taken_in = await self.acquire()
        try:
            yield taken_in
        finally:
            self.release()

    def answered(self, seconds: float) -> None:
        """An answered call: widen the window by one and update the latency average."""
        self.limit = min(self.max_calls, self.limit + 1)
        self.latency_s += LATENCY_WEIGHT * (max(seconds, 0.0) - self.latency_s)
        self._grant()

    def failed(self, seconds: float) -> None:
        """A call that timed out or failed: its time counts in the average, the size stays."""
        self.latency_s += LATENCY_WEIGHT * (max(seconds, 0.0) - self.latency_s)

    def throttle(self, taken_in: int) -> None:
        """A throttled call (429): halve the window, once per round."""
        self.throttled += 1
        if taken_in == self.round:
            self.limit = max(1, self.limit // 2)
            self.round += 1

    def _grant(self) -> None:
        while self._waiting and self.in_flight < self.limit:
            fut = self._waiting.popleft()
            if fut.done():  # its waiter was cancelled
                continue
            self.in_flight += 1
            fut.set_result(None)

    def snapshot(self) -> dict[str, Any]:
        """Return what `/status` shows."""
        return {
            "limit": self.limit,
            "max": self.max_calls,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "latency_s": round(self.latency_s, 3),
            "throttled": self.throttled,
        }
