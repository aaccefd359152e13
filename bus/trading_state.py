"""Follow the desk-wide trading state: a plain subscription on `control.*` plus stream reads.

Agents hold no consumer-create permission (a KV watch would need one), so they subscribe to the
control subjects directly and re-read the latest control message after every reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bus.metrics import TRADING_STATE
from bus.signing import SignatureStatus, Verifier
from contracts import Identity, TradingState
from contracts import subjects as s
from contracts.control import ControlMessage, decide, refusal
from contracts.topology import CONTROL

log = logging.getLogger("tradeops.trading_state")

Listener = Callable[[TradingState], None]
SETTLE_TIMEOUT_S = 5.0
SETTLE_POLL_S = 0.005


async def latest_controls(js: JetStreamContext, verifier: Verifier | None) -> list[ControlMessage]:
    """The newest stored message of each control subject, with its signature checked."""
    found: list[ControlMessage] = []
    for subject in s.CONTROL_SUBJECTS:
        try:
            raw = await js.get_msg(CONTROL, subject=subject, direct=True)
        except NotFoundError:
            continue
        if raw.seq is None:
            continue
        data = raw.data or b""
        signed = False
        if verifier is not None:
            status, signer = verifier.check(subject, data, raw.headers)
            signed = status is SignatureStatus.VALID and signer == Identity.OPS
        found.append(ControlMessage(raw.seq, subject, data, signed))
    return found


async def stored_state(js: JetStreamContext, verifier: Verifier | None) -> TradingState:
    """The trading state by the one rule (`contracts.control`) over what CONTROL holds."""
    decided = decide(await latest_controls(js, verifier))
    return TradingState.ACTIVE if decided is None else decided[0]


class TradingStateWatch:
    """The agent's view of the trading state; durable because it is read back from JetStream.

    The state is what `contracts.control.decide` says over the CONTROL stream, in stream order. A
    live message on `control.kill` halts at once (an emergency stop waits for nothing); every
    live message is then looked up in the stream, and the state is decided again from what is
    stored once all of them are there, so a message that raced another, or a stale read, cannot
    resume the desk."""

    def __init__(self, nc: NATS, agent: Identity, verifier: Verifier | None = None) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.agent = agent
        self.verifier = verifier
        self.state = TradingState.ACTIVE
        self.decided_seq = 0
        """The CONTROL sequence of the message that set the state (0: none yet)."""
        self.observed_at_monotonic: float | None = None
        self._listeners: list[Listener] = []
        self._changed = asyncio.Event()
        self._unsettled = 0
        self._settling: set[asyncio.Task[None]] = set()
        self.known = False
        """False until the CONTROL stream has been read: the state is not reported before."""

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        """Subscribe first, then read the stored state, so no change falls in between."""
        await self.nc.subscribe(s.CONTROL_ALL, cb=self._on_msg)
        await self.refresh()

    async def refresh(self) -> None:
        """Decide the state from the CONTROL stream (after start or a reconnect)."""
        controls = await latest_controls(self.js, self.verifier)
        if self._unsettled == 0:
            self._decide(controls)
        self.known = True
        self._publish_gauge()

    def _decide(self, controls: list[ControlMessage]) -> None:
        for msg in controls:
            why = refusal(msg)
            if why is not None and msg.seq > self.decided_seq:
                log.error("control message %d ignored: %s", msg.seq, why)
        decided = decide(controls)
        state, seq = decided if decided is not None else (TradingState.ACTIVE, 0)
        if seq < self.decided_seq:
            return  # a read older than what was already decided
        self.decided_seq = seq
        self._set(state, f"CONTROL seq {seq}")

    async def _on_msg(self, msg: Msg) -> None:
        if msg.subject == s.CONTROL_KILL:
            self._set(TradingState.HALTED, "control.kill received")
        self._unsettled += 1
        task = asyncio.create_task(self._settle(msg.subject, msg.data))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, subject: str, data: bytes) -> None:
        """Wait until the live message is readable from CONTROL, then decide from the stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT_S
        controls: list[ControlMessage] = []
        seen = False
        try:
            while loop.time() < deadline:
                try:
                    controls = await latest_controls(self.js, self.verifier)
                except Exception as exc:  # a lost connection: the reconnect refresh decides
                    log.warning("reading CONTROL failed: %s", exc)
                    break
                if any(c.subject == subject and c.data == data for c in controls):
                    seen = True
                    break
                await asyncio.sleep(SETTLE_POLL_S)
        finally:
            self._unsettled -= 1
        if not seen:
            log.error("a message on %s was not found in CONTROL within %.1fs", subject,
                      SETTLE_TIMEOUT_S)  # fmt: skip
            if subject == s.CONTROL_KILL:
                return  # a kill stands until the stream says otherwise
        if self._unsettled == 0 and controls:
            self._decide(controls)

    def _set(self, state: TradingState, why: str) -> None:
        if state is self.state:
            return
        log.warning("%s: trading state %s -> %s (%s)", self.agent, self.state, state, why)
        self.state = state
        self.observed_at_monotonic = asyncio.get_running_loop().time()
        if self.known:
            self._publish_gauge()
        for listener in self._listeners:
            listener(state)
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
