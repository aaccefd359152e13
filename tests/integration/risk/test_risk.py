"""The risk gate against a real nats-server: bursts, executor outcomes and restarts."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from agents.risk.agent import RebuildFailed, RiskGate
from agents.risk.calendar import MarketHours
from agents.risk.config import Limits
from agents.settings import Settings
from bus import Emit
from contracts import (
    DeadLetter,
    Identity,
    IntentAnalyzed,
    MarketTick,
    OrderRejectReason,
    RiskApproved,
    RiskReason,
    RiskRejected,
    Side,
)
from contracts import subjects as s
from contracts import topology as t
from ops.stack.natsd import NatsServer, free_port
from tests.support import events
from tests.support.agents import ConnectAs
from tests.support.pipeline import (
    count_subject,
    eventually,
    publisher_for,
    read_subject,
)

pytestmark = pytest.mark.integration

OPEN_MINUTE = datetime(2024, 6, 5, 19, 0, tzinfo=UTC)
"""A Wednesday 15:00 in New York: the gate's market hours are pinned here, XNYS open."""
LIMITS = Limits(concentration_pct=Decimal(100), rate_limit_per_s=1000)
"""Default limits, except that one symbol may be the whole book and bursts are not throttled."""


@pytest.fixture
def settings(tmp_path: Path, certs_dir: Path, nats_server: NatsServer) -> Settings:
    data_dir = tmp_path / "risk"
    shutil.copytree(certs_dir, data_dir / "certs")
    return Settings(
        data_dir=data_dir,
        nats_url=nats_server.layout.url,
        health_ports={Identity.RISK: free_port()},
        limits=LIMITS,
    )


class Running:
    """One RiskGate process-equivalent: the agent and its `run()` task."""

    def __init__(self, gate: RiskGate) -> None:
        self.gate = gate
        self.task = asyncio.create_task(gate.run())

    async def ready(self) -> bool:
        if self.task.done():
            self.task.result()  # surface a start-up failure
        return bool(self.gate._runtimes) and not await self.gate.readiness()

    async def stop(self) -> None:
        self.gate.stop()
        await asyncio.wait_for(self.task, 20)


StartGate = Callable[[], Awaitable[Running]]


@pytest.fixture
async def start_gate(settings: Settings, ops_nc: NATS) -> AsyncIterator[StartGate]:
    """Start RiskGates on the provisioned server; every one still running is stopped afterwards."""
    started: list[Running] = []

    async def _start() -> Running:
        running = Running(RiskGate(settings, market_hours=MarketHours(clock=lambda: OPEN_MINUTE)))
        started.append(running)
        await eventually(running.ready, timeout_s=10)
        return running

    yield _start
    for running in started:
        if not running.task.done():
            await running.stop()


async def publish_tick(connect_as: ConnectAs, certs_dir: Path, symbol: str, price: str) -> None:
    nc = await connect_as(Identity.INGESTOR)
    tick = MarketTick(
        event_id=uuid.uuid4(),
        producer=Identity.INGESTOR,
        symbol=symbol,
        price=Decimal(price),
        observed_at=datetime.now(UTC),
    )
    await publisher_for(nc, certs_dir, Identity.INGESTOR).publish(
        [Emit(s.of(s.MARKET_TICK, symbol), tick)]
    )


def analyzed(quantity: str, side: Side = Side.BUY, symbol: str = "AAPL") -> IntentAnalyzed:
    trade = events.trade_intent(symbol=symbol, side=side, quantity=quantity)
    return events.intent_analyzed(trade, review=events.analysis(rationale="fine"))


async def accept(connect_as: ConnectAs, certs_dir: Path, analyses: list[IntentAnalyzed]) -> None:
    """Publish each intent's acceptance as the ingestor: the gate decides only submitted intents."""
    nc = await connect_as(Identity.INGESTOR)
    emits = [
        Emit(s.intent_event(s.INTENT_ACCEPTED, e.intent.symbol, e.intent_id),
             events.intent_accepted(e.intent))
        for e in analyses
    ]  # fmt: skip
    await publisher_for(nc, certs_dir, Identity.INGESTOR, ack_timeout_s=10).publish(emits)


async def publish_intents(
    connect_as: ConnectAs, certs_dir: Path, events: list[IntentAnalyzed], *, accepted: bool = True
) -> None:
    """Publish as the analyst, all at once (every publish started before any ack is awaited),
    after the ingestor's acceptances unless `accepted` is False."""
    if accepted:
        await accept(connect_as, certs_dir, events)
    nc = await connect_as(Identity.ANALYST)
    emits = [
        Emit(s.intent_event(s.INTENT_ANALYZED, e.intent.symbol, e.intent_id), e) for e in events
    ]
    await publisher_for(nc, certs_dir, Identity.ANALYST, ack_timeout_s=10).publish(emits)


async def decisions(ops_nc: NATS) -> tuple[list[RiskApproved], list[RiskRejected]]:
    approved = await read_subject(ops_nc, t.RISK, "risk.approved.>")
    rejected = await read_subject(ops_nc, t.RISK, "risk.rejected.>")
    return (
        [RiskApproved.model_validate_json(m.data) for m in approved],
        [RiskRejected.model_validate_json(m.data) for m in rejected],
    )


async def wait_for_decisions(ops_nc: NATS, total: int) -> None:
    async def decided() -> bool:
        return await count_subject(ops_nc, t.RISK, "risk.>") >= total

    await eventually(decided, timeout_s=15)


async def test_burst_of_30_intents_of_500_aapl_approves_20_and_rejects_10_position_limit(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    # Arrange
    await publish_tick(connect_as, certs_dir, "AAPL", "190.00")
    await start_gate()

    # Act: 30 x 500 against a position limit of 10,000
    await publish_intents(connect_as, certs_dir, [analyzed("500") for _ in range(30)])
    await wait_for_decisions(ops_nc, 30)
    await asyncio.sleep(0.5)  # nothing more may come

    # Assert
    approved, rejected = await decisions(ops_nc)
    assert (len(approved), len(rejected)) == (20, 10)
    assert all(r.reasons == (RiskReason.POSITION_LIMIT,) for r in rejected)
    assert "beyond the limit of 10,000" in rejected[0].detail
    assert {a.notional_usd for a in approved} == {Decimal("95000.00")}
    assert len({a.intent_id for a in approved} | {r.intent_id for r in rejected}) == 30


async def test_executor_rejection_releases_pending_so_the_next_intent_fits(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    # Arrange: the limit is used up by 20 pending approvals
    await publish_tick(connect_as, certs_dir, "AAPL", "190.00")
    await start_gate()
    await publish_intents(connect_as, certs_dir, [analyzed("500") for _ in range(20)])
    await wait_for_decisions(ops_nc, 20)
    approved, _ = await decisions(ops_nc)

    # Act: the executor rejects one approved order; then a new 500 arrives
    executor = await connect_as(Identity.EXECUTOR)
    rejection = events.order_rejected(approved[0].intent, reason=OrderRejectReason.BROKER_ERROR)
    await publisher_for(executor, certs_dir, Identity.EXECUTOR).publish([events.emit(rejection)])
    await eventually(lambda: _consumed(ops_nc, "risk-orders"), timeout_s=10)
    await publish_intents(connect_as, certs_dir, [analyzed("500"), analyzed("500")])
    await wait_for_decisions(ops_nc, 22)

    # Assert: the first fits in the released room, the second does not
    approved, rejected = await decisions(ops_nc)
    assert (len(approved), len(rejected)) == (21, 1)
    assert rejected[0].reasons == (RiskReason.POSITION_LIMIT,)


async def _consumed(ops_nc: NATS, durable: str) -> bool:
    info = await ops_nc.jetstream().consumer_info(t.ORDERS, durable)
    done: bool = info.num_pending == 0 and info.num_ack_pending == 0
    return done and info.delivered.stream_seq > 0


async def test_restarted_gate_keeps_pending_exposure_and_rejects_past_the_limit(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    # Arrange: 20 x 500 approved, none booked yet; the gate stops
    await publish_tick(connect_as, certs_dir, "AAPL", "190.00")
    first = await start_gate()
    await publish_intents(connect_as, certs_dir, [analyzed("500") for _ in range(20)])
    await wait_for_decisions(ops_nc, 20)
    await first.stop()

    # Act: a new gate process starts and one more intent arrives
    second = await start_gate()
    await publish_intents(connect_as, certs_dir, [analyzed("1")])
    await wait_for_decisions(ops_nc, 21)

    # Assert
    approved, rejected = await decisions(ops_nc)
    assert (len(approved), len(rejected)) == (20, 1)
    assert rejected[0].reasons == (RiskReason.POSITION_LIMIT,)
    assert second.gate.exposure.line("paper-1", "AAPL").pending_buy == Decimal(10_000)


async def test_gate_without_read_access_to_risk_refuses_to_start(
    settings: Settings, ops_nc: NATS, monkeypatch: pytest.MonkeyPatch, nats_server: NatsServer
) -> None:
    # Arrange: a server whose risk identity may not direct-get RISK
    reads = tuple(x for x in t.DIRECT_READS[Identity.RISK] if x != t.RISK)
    monkeypatch.setitem(t.DIRECT_READS, Identity.RISK, reads)
    await nats_server.stop()
    await nats_server.start()
    gate = RiskGate(settings, market_hours=MarketHours(clock=lambda: OPEN_MINUTE))

    # Act / Assert
    try:
        with pytest.raises(RebuildFailed, match=r"\$JS\.API\.DIRECT\.GET\.RISK"):
            await asyncio.wait_for(gate.run(), 20)
    finally:
        if gate._nc is not None:
            await gate.nc.close()


async def test_a_compromised_analyst_s_forgeries_are_dead_lettered_provenance_never_approved(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    # Arrange: the analyst's own connection and key, as an attacker holding them would use them
    await publish_tick(connect_as, certs_dir, "AAPL", "190.00")
    await start_gate()
    analyst = await connect_as(Identity.ANALYST)
    js = analyst.jetstream()
    forged_signer, wrong_producer, unsigned = analyzed("1"), analyzed("1"), analyzed("1")
    wrong_producer = wrong_producer.model_copy(update={"producer": Identity.INGESTOR})
    honest = analyzed("1")

    def subject(e: IntentAnalyzed) -> str:
        return s.intent_event(s.INTENT_ANALYZED, e.intent.symbol, e.intent_id)

    await accept(connect_as, certs_dir, [forged_signer, wrong_producer, unsigned, honest])

    # Act
    signed = publisher_for(analyst, certs_dir, Identity.ANALYST)
    forged = forged_signer.model_dump_json().encode()
    headers = signed.signer.headers(subject(forged_signer), forged)
    headers["Tradeops-Signer"] = "risk"  # the analyst's signature, claimed as the gate's
    await js.publish(subject(forged_signer), forged, headers=headers)
    await signed.publish([Emit(subject(wrong_producer), wrong_producer)])
    await js.publish(subject(unsigned), unsigned.model_dump_json().encode())
    await signed.publish([Emit(subject(honest), honest)])

    # Assert
    await wait_for_decisions(ops_nc, 1)

    async def three_dead_letters() -> bool:
        return await count_subject(ops_nc, t.DLQ, "dlq.risk.*") >= 3

    await eventually(three_dead_letters, timeout_s=15)
    stored = await read_subject(ops_nc, t.DLQ, "dlq.risk.*")
    letters = [DeadLetter.model_validate_json(m.data) for m in stored]
    assert {str(d.intent_id): d.reason for d in letters} == {
        str(e.intent_id): "provenance" for e in (forged_signer, wrong_producer, unsigned)
    }
    approved, rejected = await decisions(ops_nc)
    assert [a.intent_id for a in approved] == [honest.intent_id] and rejected == []


async def test_a_validly_signed_analysis_carrying_a_cheap_future_price_is_checked_at_the_market(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    # Arrange: the gate sees BTC at 67,000; 5 BTC is about 335k, over the 250k notional limit
    await publish_tick(connect_as, certs_dir, "BTC-USD", "67000")
    await start_gate()
    trade = events.trade_intent(symbol="BTC-USD", quantity="5")
    in_the_future = datetime.now(UTC) + timedelta(hours=1)
    cheap = events.intent_analyzed(
        trade, review=events.analysis(rationale="fine"), reference_price="1000",
        reference_price_ts=in_the_future,
    )  # fmt: skip

    # Act: the analyst's own key signs it, as a compromised analyst would
    await publish_intents(connect_as, certs_dir, [cheap])

    # Assert
    await wait_for_decisions(ops_nc, 1)
    approved, rejected = await decisions(ops_nc)
    assert approved == []
    assert RiskReason.MAX_NOTIONAL in rejected[0].reasons


async def test_an_analysis_of_an_intent_nobody_submitted_or_with_other_terms_is_not_decided(
    start_gate: StartGate, connect_as: ConnectAs, certs_dir: Path, ops_nc: NATS
) -> None:
    await publish_tick(connect_as, certs_dir, "AAPL", "190.00")
    await start_gate()
    never_submitted, honest = analyzed("1"), analyzed("2")
    other_terms = analyzed("3")
    await accept(connect_as, certs_dir, [other_terms])
    bigger = other_terms.intent.model_copy(update={"quantity": Decimal("300")})
    other_terms = other_terms.model_copy(update={"intent": bigger})

    await publish_intents(connect_as, certs_dir, [never_submitted, other_terms], accepted=False)
    await publish_intents(connect_as, certs_dir, [honest])

    await wait_for_decisions(ops_nc, 1)

    async def two_dead_letters() -> bool:
        return await count_subject(ops_nc, t.DLQ, "dlq.risk.*") >= 2

    await eventually(two_dead_letters, timeout_s=15)
    stored = await read_subject(ops_nc, t.DLQ, "dlq.risk.*")
    parsed = [DeadLetter.model_validate_json(m.data) for m in stored]
    letters = {str(d.intent_id): d for d in parsed}
    assert set(letters) == {str(never_submitted.intent_id), str(other_terms.intent_id)}
    assert {d.reason for d in letters.values()} == {"provenance"}
    approved, _ = await decisions(ops_nc)
    assert [a.intent_id for a in approved] == [honest.intent_id]
