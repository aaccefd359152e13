"""Stop on Ctrl-C, SIGTERM and SIGHUP alike: cancel the work once, let its cleanup run whole.

A process that starts others (`tradeops up`, `tradeops demo`) runs its work through
`until_signalled`: the first of these signals cancels the work, whose `finally` blocks stop every
process it started; later signals are ignored, so a second Ctrl-C cannot interrupt the cleanup
and leave a nats-server, a Postgres or an agent behind.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """The work was stopped by a signal (after its cleanup ran)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number."""
        return 128 + self.signum


async def until_signalled(
    work: Coroutine[Any, Any, T], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> T:
    """Run `work`; the first of `signals` cancels it, then `Interrupted` is raised."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, int(sig))
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
