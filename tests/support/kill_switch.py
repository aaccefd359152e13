"""The desk of the kill-switch tests (tests/system/test_kill_switch.py) and what they read.

`open_desk` connects as ops and as the client to a running embedded stack and follows every
intent's outcome live (`Terminals`); `Load` submits intents at a fixed rate; `sigkill` kills one
supervised process and waits for its restart; `kind_and_reasons` and `stopped_by` read an
intent's terminal outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import PubAck

from agents.settings import load_settings
from bus import Credentials, Signer
from bus.headers import INTENT as INTENT_HEADER
from bus.headers import KIND as KIND_HEADER
from contracts import Identity, OrderFilled, OrderRejected, RiskRejected, TradingState
from contracts import subjects as s
from ops.bench.killswitch import StatusPoller, health_urls
from ops.control import set_trading_state
from ops.stack.embedded import EmbeddedStack
from ops.stack.scratch import OPEN_CASH_USD, OPEN_LIMITS, OPEN_PRICES, write_scratch_config
from tests.support.pipeline import eventually
from tests.support.stack import TERMINAL, connect_to

SYMBOLS = tuple(OPEN_PRICES)
OUTCOME_TIMEOUT_S = 30.0


@dataclass
class Terminals:
    """Every intent's outcome events as ops sees them live (core subscriptions)."""

    events: dict[str, dict[str, bytes]] = field(default_factory=lambda: defaultdict(dict))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, ops: NATS) -> None:
        for subject in ("risk.>", "order.>", "ledger.>", "dlq.>"):
            await ops.subscribe(subject, cb=self._on_msg)
        await ops.flush()
        await ops.flush()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        iid, kind = headers.get(INTENT_HEADER), headers.get(KIND_HEADER)
        if iid and kind:
            self.events[iid][kind] = msg.data
            self.changed.set()

    def done(self, iid: str) -> bool:
        return any(kind in self.events.get(iid, {}) for kind in TERMINAL)

    async def outcome(self, iid: str, timeout_s: float = OUTCOME_TIMEOUT_S) -> dict[str, bytes]:
        """Wait until `iid` has a terminal event; return its events by kind."""
        await self.all_done([iid], timeout_s)
        return self.events[iid]

    async def all_done(self, ids: list[str], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not all(self.done(i) for i in ids):
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Desk:
    """The operator's and the client's side of one test."""

    stack: EmbeddedStack
    ops: NATS
    client: NATS
    signer: Signer
    poller: StatusPoller
    terminals: Terminals

    async def set_state(self, state: TradingState) -> datetime:
        """Publish `state` as ops; return the ack's receipt time once every agent reports it."""
        await set_trading_state(self.ops, self.signer, state, reason="kill-switch test")
        acked = datetime.now(UTC)
        await self.poller.all_seen(state)
        return acked

    async def submit(self, account: str, symbol: str, side: str, quantity: str) -> str:
        iid = str(uuid.uuid4())
        body = {"intent_id": iid, "account": account, "symbol": symbol, "side": side,
                "quantity": quantity}  # fmt: skip
        await self.client.jetstream().publish(
            s.of(s.INTENT_SUBMITTED, symbol), json.dumps(body).encode()
        )
        return iid

    async def states(self) -> dict[Identity, str]:
        return await self.poller.states()

    async def all_connected(self) -> bool:
        docs = await asyncio.gather(*(self.poller.status(a) for a in self.poller.urls))
        return all(doc["connected"] is True for doc in docs)

    async def all_ready(self, timeout_s: float = 90.0) -> None:
        await self.stack.wait_ready(timeout_s=timeout_s)


@asynccontextmanager
async def desk_stack(
    prefix: str,
    accounts: Iterable[str],
    feed_interval_ms: int | None = None,
    storage: Mapping[str, Any] | None = None,
) -> AsyncIterator[EmbeddedStack]:
    """A whole stack on an open universe (every intent within limits fills), outside pytest's
    tmp tree (embedded Postgres runs as another user when root); removed afterwards.
    `storage`: the `[storage]` table (stream limits)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    data_dir = base / "stack"
    write_scratch_config(
        data_dir,
        feed_interval_ms=feed_interval_ms,
        limits=OPEN_LIMITS,
        accounts=dict.fromkeys(accounts, OPEN_CASH_USD),
        prices=OPEN_PRICES,
        storage=storage,
    )
    try:
        async with EmbeddedStack(load_settings(data_dir)).running() as embedded:
            yield embedded
    finally:
        shutil.rmtree(base, ignore_errors=True)


@asynccontextmanager
async def open_desk(stack: EmbeddedStack) -> AsyncIterator[Desk]:
    """Connect as ops and client; the desk is `active` with every agent ready, before and after."""
    certs = stack.settings.certs_dir
    ops = await connect_to(stack, Identity.OPS)
    client = await connect_to(stack, Identity.CLIENT)
    signer = Signer.from_file(Identity.OPS, Credentials(Identity.OPS, certs).signing_key_file)
    terminals = Terminals()
    await terminals.follow(ops)
    async with aiohttp.ClientSession() as http:
        opened = Desk(stack, ops, client, signer, StatusPoller(health_urls(stack), http), terminals)
        await opened.all_ready()
        await opened.set_state(TradingState.ACTIVE)
        try:
            yield opened
        finally:
            await opened.all_ready()
            await opened.set_state(TradingState.ACTIVE)
            await client.close()
            await ops.close()


async def sigkill(stack: EmbeddedStack, name: str) -> None:
    """SIGKILL one component and wait until its supervisor has started a new process."""
    component = stack.components[name]
    assert component.proc is not None
    restarts = component.restarts
    os.kill(component.proc.pid, signal.SIGKILL)

    async def restarted() -> bool:
        return component.restarts > restarts

    await eventually(restarted, timeout_s=30, every_s=0.05)


def kind_and_reasons(events: dict[str, bytes]) -> tuple[str, frozenset[str]]:
    """Return an intent's terminal kind and, for a rejection, its reason codes."""
    if "risk.rejected" in events:
        reasons = RiskRejected.model_validate_json(events["risk.rejected"]).reasons
        return "risk.rejected", frozenset(str(r) for r in reasons)
    if "order.rejected" in events:
        reason = OrderRejected.model_validate_json(events["order.rejected"]).reason
        return "order.rejected", frozenset({str(reason)})
    return next(k for k in TERMINAL if k in events), frozenset()


def stopped_by(events: dict[str, bytes]) -> str | None:
    """Return where the intent was stopped for `halted` (the gate or the executor), else None."""
    kind, reasons = kind_and_reasons(events)
    return kind if "halted" in reasons else None


@dataclass
class Load:
    """Intents submitted at a fixed rate until stopped, with the time each publish was called."""

    submitted: list[tuple[str, datetime]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, client: NATS, account: str, rate_per_s: int, max_s: float) -> None:
        js = client.jetstream()
        loop = asyncio.get_running_loop()
        started = loop.time()
        acks: list[asyncio.Future[PubAck]] = []
        for n in range(int(rate_per_s * max_s)):
            if self.stop.is_set():
                break
            delay = started + n / rate_per_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            iid = str(uuid.uuid4())
            symbol = SYMBOLS[n % 2]
            body = {"intent_id": iid, "account": account, "symbol": symbol,
                    "side": "buy" if n % 4 < 2 else "sell", "quantity": "0.01"}  # fmt: skip
            self.submitted.append((iid, datetime.now(UTC)))
            acks.append(
                await js.publish_async(s.of(s.INTENT_SUBMITTED, symbol), json.dumps(body).encode())
            )
        await asyncio.gather(*acks)

    @property
    def ids(self) -> list[str]:
        return [iid for iid, _ in self.submitted]

    def after(self, moment: datetime) -> list[str]:
        return [iid for iid, at in self.submitted if at > moment]


@dataclass(frozen=True)
class KilledUnderLoad:
    """What a kill in the middle of a 1,000 intents/s load left in the streams."""

    ids: list[str]
    after_kill: list[str]
    """Intents whose publish was called after the kill's ack was received."""
    acked: datetime
    """When the kill's publish ack was received (UTC, same machine as the agents)."""
    fills: list[OrderFilled]
    seen: dict[str, Counter[str]]
    """Every intent's events by kind, read back from the streams."""
    events: dict[str, dict[str, bytes]]
    """Every intent's outcome events as ops saw them live."""
