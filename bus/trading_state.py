"""Follow the desk-wide trading state: a plain subscription on `control.*` plus a read at start.

Agents hold no consumer-create permission (a KV watch would need one), so they subscribe to the
control subjects directly and re-read the latest control message after every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus.metrics import TRADING_STATE
from bus.signing import SignatureStatus, Verifier
from contracts import Identity, InvalidMessage, TradingState, TradingStateChanged, parse
from contracts import subjects as s
from contracts.topology import CONTROL

log = logging.getLogger("tradeops.trading_state")

Listener = Callable[[TradingState], None]


async def latest_control(
    js: JetStreamContext,
) -> tuple[str, bytes, dict[str, str] | None] | None:
    """Return (subject, data, headers) of the newest control message, or None if none yet."""
    latest: tuple[int, str, bytes, dict[str, str] | None] | None = None
    for subject in s.CONTROL_SUBJECTS:
        try:
            raw = await js.get_msg(CONTROL, subject=subject, direct=True)
        except NotFoundError:
            continue
        if raw.seq is not None and (latest is None or raw.seq > latest[0]):
            latest = (raw.seq, subject, raw.data or b"", raw.headers)
    return None if latest is None else latest[1:]


class TradingStateWatch:
    """The agent's view of the trading state; durable because it is read back from JetStream."""

    def __init__(self, nc: NATS, agent: Identity, verifier: Verifier | None = None) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.agent = agent
        self.verifier = verifier
        self.state = TradingState.ACTIVE
        self.changed_at: datetime | None = None
        self.observed_at_monotonic: float | None = None
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self.known = False
        """False until the CONTROL stream has been read: the state is not reported before."""

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Subscribe first, then read the latest state, so no change falls in between."""
        await self.nc.subscribe(s.CONTROL_ALL, cb=self._on_msg)
        await self.refresh()

    async def refresh(self) -> None:
        """Read the latest control message from the CONTROL stream (after start or reconnect)."""
        latest = await latest_control(self.js)
        if latest is not None:
            self._apply(*latest)
        self.known = True
        self._publish_gauge()

    async def _on_msg(self, msg: Msg) -> None:
        self._apply(msg.subject, msg.data, msg.headers)

    def _apply(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        try:
            change = parse(TradingStateChanged, data)
        except InvalidMessage as exc:
            log.error("ignored malformed control message on %s: %s", subject, exc)
            return
        if self.verifier is not None:
            status, signer = self.verifier.check(subject, data, headers)
            if status is not SignatureStatus.VALID or signer != Identity.OPS:
                log.error(
                    "ignored control message on %s: signature %s by %s", subject, status, signer
                )
                return
        if self.changed_at is not None and change.ts < self.changed_at:
            return  # an older state read back after a newer live one
        self.changed_at = change.ts
        if change.state is self.state:
            return
        log.warning(
            "%s: trading state %s -> %s (%s)", self.agent, self.state, change.state, change.reason
        )
        self.state = change.state
        self.observed_at_monotonic = asyncio.get_running_loop().time()
        if self.known:
            self._publish_gauge()
        for listener in self._listeners:
            listener(change.state)
        self._changed.set()
        self._changed = asyncio.Event()

    def _publish_gauge(self) -> None:
        for state in TradingState:
            TRADING_STATE.labels(agent=self.agent, state=state).set(1 if state is self.state else 0)

    async def wait_for(self, state: TradingState, timeout_s: float = 5.0) -> None:
        """Wait until the state is `state` (for tests and the CLI)."""
        async with asyncio.timeout(timeout_s):
            while self.state is not state:
                await self._changed.wait()
