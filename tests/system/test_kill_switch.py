"""The kill switch on the embedded stack: five agent processes, mutual TLS, file storage, Postgres.

One stack serves the module (starting one takes ~25 s here). Tests stay independent: each uses
accounts of its own (the risk book is per account and symbol), and each starts and ends with the
desk `active` and every agent ready. The universe is opened up (large limits, no rate limit) so
that intents fill unless the trading state stops them. The desk, the load and the readers of an
outcome are in tests/integration/kill_switch_helpers.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import nats.errors
import pytest
import pytest_asyncio

from bus import Credentials, Signer
from bus.replay import read_stream
from contracts import (
    AGENTS,
    Identity,
    OrderFilled,
    TradingState,
    TradingStateChanged,
)
from contracts import subjects as s
from contracts import topology as t
from ops.bench.killswitch import Probe, measure
from ops.control import set_trading_state
from ops.stack.embedded import EmbeddedStack
from ops.stack.natsd import wait_healthy
from tests.support.kill_switch import (
    SYMBOLS,
    Desk,
    KilledUnderLoad,
    Load,
    desk_stack,
    kind_and_reasons,
    open_desk,
    sigkill,
    stopped_by,
)
from tests.support.pipeline import eventually
from tests.support.stack import connect_to, outcomes, terminal_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    async with desk_stack("tradeops-killswitch-", ACCOUNTS, feed_interval_ms=100) as embedded:
        yield embedded


@pytest_asyncio.fixture(loop_scope="module")
async def desk(stack: EmbeddedStack) -> AsyncIterator[Desk]:
    async with open_desk(stack) as opened:
        yield opened


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
