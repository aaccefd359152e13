"""The kill switch on the embedded stack: five agent processes, mutual TLS, file storage, Postgres.

One stack serves the module (starting one takes ~25 s here). Tests stay independent: each uses
accounts of its own (the risk book is per account and symbol), and each starts and ends with the
desk `active` and every agent ready. The universe is opened up (large limits, no rate limit) so
that intents fill unless the trading state stops them.
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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import nats.errors
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import PubAck

from agents.settings import load_settings
from bus import Credentials, Signer
from bus.headers import INTENT as INTENT_HEADER
from bus.headers import KIND as KIND_HEADER
from bus.replay import read_stream
from contracts import (
    AGENTS,
    Identity,
    OrderFilled,
    OrderRejected,
    RiskRejected,
    TradingState,
    TradingStateChanged,
)
from contracts import subjects as s
from contracts import topology as t
from ops.bench.killswitch import Probe, StatusPoller, health_urls, measure
from ops.control import set_trading_state
from ops.stack.embedded import EmbeddedStack
from ops.stack.natsd import wait_healthy
from tests.conftest import free_port
from tests.integration.pipeline_helpers import eventually
from tests.integration.stack_helpers import TERMINAL, connect_to, outcomes, terminal_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

SYMBOLS = ("BTC-USD", "ETH-USD")
ACCOUNTS = ("ks-denied", "ks-restart", "ks-natsd", "ks-load", "ks-resume", "ks-reduce")
LOAD_RATE_PER_S = 1000
LOAD_BEFORE_KILL_S = 1.0
FILLS_BEFORE_KILL = 100
"""The kill comes once the load has filled this many intents (and no sooner than 1 s in)."""
LOAD_AFTER_KILL_S = 1.0
LOAD_MAX_S = 30.0
FILL_GRACE_MS = 20
"""No fill may be stamped later than this after the kill's publish acknowledgement."""
DENIED_TIMEOUT_S = 0.5
OUTCOME_TIMEOUT_S = 30.0


def _config() -> str:
    ports = "\n".join(f"{a} = {free_port()}" for a in AGENTS)
    accounts = "".join(
        f'[[accounts]]\nname = "{a}"\nstarting_cash_usd = "1000000000"\n' for a in ACCOUNTS
    )
    instruments = "".join(
        f'[[instruments]]\nsymbol = "{sym}"\ncalendar = "24/7"\nmax_quantity = "1000"\n'
        f'position_limit = "1000000"\nstart_price = "{price}"\n'
        for sym, price in zip(SYMBOLS, ("65000", "3200"), strict=True)
    )
    return (
        f"nats_port = {free_port()}\nnats_monitor_port = {free_port()}\n"
        f"{accounts}{instruments}"
        '[limits]\nrate_limit_per_s = 100000000\nmax_notional_usd = "100000000"\n'
        'concentration_pct = "100"\nmax_leverage = "1000"\n'
        "[feed]\ninterval_ms = 100\n"
        f"[health_ports]\n{ports}\n"
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-killswitch-"))  # not under pytest's tmp
    data_dir = base / "stack"
    data_dir.mkdir()
    (data_dir / "tradeops.toml").write_text(_config())
    try:
        async with EmbeddedStack(load_settings(data_dir)).running() as embedded:
            yield embedded
    finally:
        shutil.rmtree(base, ignore_errors=True)


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


@pytest_asyncio.fixture(loop_scope="module")
async def desk(stack: EmbeddedStack) -> AsyncIterator[Desk]:
    async with open_desk(stack) as opened:
        yield opened


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


# -- who may flip it -----------------------------------------------------------------------------


async def test_kill_from_client_or_any_agent_is_refused_and_every_agent_stays_active(
    stack: EmbeddedStack, desk: Desk
) -> None:
    # Arrange: a well-formed kill, signed by the identity that tries to publish it
    js = desk.ops.jetstream()
    stored_before = (await js.stream_info(t.CONTROL)).state.messages
    kill = (
        TradingStateChanged(
            event_id=uuid.uuid4(), producer=Identity.OPS, state=TradingState.HALTED, reason="rogue"
        )
        .model_dump_json()
        .encode()
    )

    # Act: the client and every agent publish it, on the core subject and through JetStream
    for identity in (Identity.CLIENT, *AGENTS):
        nc = await connect_to(stack, identity)
        try:
            creds = Credentials(identity, stack.settings.certs_dir)
            headers = Signer.from_file(identity, creds.signing_key_file).headers(
                s.CONTROL_KILL, kill
            )
            await nc.publish(s.CONTROL_KILL, kill, headers=headers)
            await nc.flush()
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await nc.jetstream(timeout=DENIED_TIMEOUT_S).publish(
                    s.CONTROL_KILL, kill, headers=headers
                )
        finally:
            await nc.close()

    # Assert: nothing stored, every agent still active, and an intent still fills
    assert (await js.stream_info(t.CONTROL)).state.messages == stored_before
    assert await desk.states() == {a: "active" for a in AGENTS}
    iid = await desk.submit("ks-denied", "BTC-USD", "buy", "0.01")
    assert "ledger.posted" in await desk.terminals.outcome(iid)
    assert await desk.states() == {a: "active" for a in AGENTS}


# -- durability of the halt ----------------------------------------------------------------------


async def test_risk_and_executor_restarted_while_halted_report_halted_and_reject_with_halted(
    stack: EmbeddedStack, desk: Desk
) -> None:
    # Arrange
    await desk.set_state(TradingState.HALTED)

    # Act: SIGKILL both; the supervisor starts them again
    await asyncio.gather(sigkill(stack, "risk"), sigkill(stack, "executor"))
    await desk.all_ready()

    # Assert: they read the halt back from CONTROL, and an intent is stopped at the gate
    assert await desk.states() == {a: "halted" for a in AGENTS}
    iid = await desk.submit("ks-restart", "ETH-USD", "buy", "0.01")
    assert stopped_by(await desk.terminals.outcome(iid)) == "risk.rejected"


async def test_executor_restarting_while_halted_never_reports_active(
    stack: EmbeddedStack, desk: Desk
) -> None:
    # Arrange: halted; every answer of the executor's /status is kept from the SIGKILL on
    await desk.set_state(TradingState.HALTED)
    answers: list[str] = []
    polling = asyncio.Event()

    async def poll() -> None:
        while polling.is_set() or not answers:
            try:
                doc = await desk.poller.status(Identity.EXECUTOR)
                answers.append(str(doc["trading_state"]))
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.001)

    # Act
    polling.set()
    poller = asyncio.create_task(poll())
    await sigkill(stack, "executor")
    await desk.all_ready()
    polling.clear()
    await poller

    # Assert
    assert "active" not in answers, f"{answers.count('active')} of {len(answers)} said active"


async def test_halt_survives_a_nats_server_restart_and_an_agent_started_after_it(
    stack: EmbeddedStack, desk: Desk
) -> None:
    # Arrange
    await desk.set_state(TradingState.HALTED)

    # Act: SIGKILL nats-server (the supervisor restarts it on the same store), then, once every
    # agent is back, SIGKILL the ingestor so that it starts from the recovered CONTROL stream
    await sigkill(stack, "nats-server")
    await wait_healthy(stack.layout)
    await eventually(desk.all_connected, timeout_s=30)
    await desk.all_ready()
    await sigkill(stack, "ingestor")
    await desk.all_ready()

    # Assert
    assert await desk.states() == {a: "halted" for a in AGENTS}
    assert await desk.all_connected()
    iid = await desk.submit("ks-natsd", "BTC-USD", "sell", "0.01")
    assert stopped_by(await desk.terminals.outcome(iid)) == "risk.rejected"


# -- the kill under load -------------------------------------------------------------------------


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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def killed_under_load(stack: EmbeddedStack) -> KilledUnderLoad:
    async with open_desk(stack) as desk:
        # A steady load on both symbols, buys and sells, until fills are flowing
        load = Load()
        running = asyncio.create_task(
            load.run(desk.client, "ks-load", LOAD_RATE_PER_S, LOAD_MAX_S), name="load"
        )

        async def filling() -> bool:
            events = desk.terminals.events
            filled = sum("order.filled" in events.get(i, {}) for i in load.ids)
            return filled >= FILLS_BEFORE_KILL

        await asyncio.sleep(LOAD_BEFORE_KILL_S)
        await eventually(filling, timeout_s=LOAD_MAX_S / 2, every_s=0.01)
        assert not running.done(), "the load ended before the kill"

        # The kill, mid-run; the load goes on for a while
        await set_trading_state(desk.ops, desk.signer, TradingState.HALTED, reason="load test")
        acked = datetime.now(UTC)
        await asyncio.sleep(LOAD_AFTER_KILL_S)
        load.stop.set()
        await running
        await desk.terminals.all_done(load.ids, timeout_s=120)

        fills = [
            fill
            async for msg in read_stream(desk.ops, t.ORDERS, subject="order.filled.>")
            if (fill := OrderFilled.model_validate_json(msg.data)).intent.account == "ks-load"
        ]
        seen = dict(await outcomes(desk.ops))
    return KilledUnderLoad(
        load.ids, load.after(acked), acked, fills, seen, dict(desk.terminals.events)
    )


async def test_kill_at_1000_intents_per_s_every_intent_ends_once_and_none_after_it_fills(
    killed_under_load: KilledUnderLoad,
) -> None:
    run = killed_under_load
    assert {str(f.intent_id) for f in run.fills} <= set(run.ids)
    assert len(run.fills) >= FILLS_BEFORE_KILL
    assert len(run.after_kill) >= LOAD_RATE_PER_S * LOAD_AFTER_KILL_S / 2

    # (c) exactly one terminal outcome each, read back from the streams
    not_once = {i: run.seen[i] for i in run.ids if terminal_count(run.seen[i]) != 1}
    assert not_once == {}

    # those submitted after the kill were stopped for halted, at the gate or at the executor
    stopped = Counter(stopped_by(run.events[i]) for i in run.after_kill)
    assert stopped.keys() <= {"risk.rejected", "order.rejected"}, stopped
    assert all(run.seen[i]["order.filled"] == 0 for i in run.after_kill)


async def test_kill_at_1000_intents_per_s_no_fill_is_stamped_over_20_ms_after_the_kill_ack(
    killed_under_load: KilledUnderLoad,
) -> None:
    # (b) the kill's ack is the reference; the agents run on this machine, so one clock
    run = killed_under_load
    bound = run.acked + timedelta(milliseconds=FILL_GRACE_MS)
    late_ms = sorted(
        (f.ts - run.acked) / timedelta(milliseconds=1) for f in run.fills if f.ts > bound
    )
    assert late_ms == [], (
        f"{len(late_ms)} of {len(run.fills)} fills stamped > {FILL_GRACE_MS} ms after the kill "
        f"ack (latest +{late_ms[-1]:.1f} ms)"
    )


# -- resume and reduce ---------------------------------------------------------------------------


async def test_after_resume_new_intents_fill_again(desk: Desk) -> None:
    # Arrange
    await desk.set_state(TradingState.HALTED)
    halted = await desk.submit("ks-resume", "ETH-USD", "buy", "1")
    assert stopped_by(await desk.terminals.outcome(halted)) == "risk.rejected"

    # Act
    await desk.set_state(TradingState.ACTIVE)
    resumed = [await desk.submit("ks-resume", sym, "buy", "0.1") for sym in SYMBOLS]

    # Assert
    for iid in resumed:
        events = await desk.terminals.outcome(iid)
        assert {"order.filled", "ledger.posted"} <= events.keys(), events.keys()


async def test_when_reducing_a_growing_buy_is_rejected_and_a_shrinking_sell_fills(
    desk: Desk,
) -> None:
    # Arrange: a long position of 2 ETH
    opened = await desk.submit("ks-reduce", "ETH-USD", "buy", "2")
    assert "ledger.posted" in await desk.terminals.outcome(opened)

    # Act
    await desk.set_state(TradingState.REDUCING)
    grow = await desk.submit("ks-reduce", "ETH-USD", "buy", "0.5")
    shrink = await desk.submit("ks-reduce", "ETH-USD", "sell", "0.5")

    # Assert
    kind, reasons = kind_and_reasons(await desk.terminals.outcome(grow))
    assert (kind, "reduce_only" in reasons) == ("risk.rejected", True), reasons
    events = await desk.terminals.outcome(shrink)
    assert {"order.filled", "ledger.posted"} <= events.keys(), events.keys()
    fill = OrderFilled.model_validate_json(events["order.filled"])
    assert (fill.intent.side, str(fill.fill_quantity)) == ("sell", "0.5")


# -- the benchmark's measurement -----------------------------------------------------------------


async def test_killswitch_bench_times_every_kill_and_resume_and_leaves_the_desk_active(
    stack: EmbeddedStack, desk: Desk
) -> None:
    # Act
    result = await measure(stack, trials=3)

    # Assert: per trial, a kill and a resume through each probe, each seen by every agent
    assert result.trials == 3
    assert len(result.flips) == 3 * 2 * len(Probe)
    # (no agent can report the new state before the publish was even sent)
    assert all(-f.publish_to_ack_ms < f.all_seen_ms < 5000 for f in result.flips), result.flips
    assert {f.last_agent for f in result.flips} <= set(AGENTS)
    assert result.p50_ms <= result.p99_ms == result.max_ms
    assert await desk.states() == {a: "active" for a in AGENTS}
