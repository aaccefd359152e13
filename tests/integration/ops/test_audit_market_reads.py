"""How the audit's market check reads MARKET on a real nats-server (ops.audit.market).

It reads from shortly before the first approval, not from the start of the week MARKET keeps;
the tick a symbol had before that is looked up; an approval older than every tick MARKET still
holds of its symbol is counted, not named.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from nats.aio.client import Client as NATS

from bus.replay import read_one
from contracts import Identity, MarketTick
from contracts import subjects as s
from contracts import topology as t
from ops.audit.facts import fact_of
from ops.audit.market import Approval, judge_market, read_approval
from ops.audit.report import AuditReport
from tests.support import events

pytestmark = pytest.mark.integration

COLLAR = Decimal(5)


async def ticks(ops: NATS, symbol: str, price: str, count: int = 1) -> None:
    js = ops.jetstream()
    acks = []
    for _ in range(count):
        tick = MarketTick(event_id=uuid.uuid4(), producer=Identity.INGESTOR, symbol=symbol,
                          price=Decimal(price), observed_at=datetime.now(UTC))  # fmt: skip
        acks.append(
            await js.publish_async(s.of(s.MARKET_TICK, symbol), tick.model_dump_json().encode())
        )
    await asyncio.gather(*acks)


async def approved(ops: NATS, symbol: str, price: str) -> Approval:
    """An approval stored in RISK now, read back as the audit reads it (trusted: its provenance
    is not what these tests are about)."""
    intent = events.trade_intent(symbol=symbol)
    data = events.risk_approved(intent, reference_price=price).model_dump_json().encode()
    ack = await ops.jetstream().publish(
        s.intent_event(s.RISK_APPROVED, symbol, intent.intent_id), data
    )
    stored = await read_one(ops, t.RISK, ack.seq)
    assert stored is not None
    fact = fact_of(stored)
    fact.trusted = True
    return read_approval(fact, stored.data)


async def audit(ops: NATS, approvals: list[Approval], lookback_s: float) -> AuditReport:
    report = AuditReport("test")
    await judge_market(ops, approvals, COLLAR, report, lookback_s=lookback_s)
    return report


def named(report: AuditReport) -> dict[str | None, str]:
    return {f.intent_id: f.what for f in report.discrepancies if f.check == "market"}


async def test_the_read_starts_near_the_first_approval_not_at_the_start_of_market(
    ops_nc: NATS,
) -> None:
    await ticks(ops_nc, "AAPL", "100", count=2000)  # a long history nobody approved in
    await asyncio.sleep(0.5)
    await ticks(ops_nc, "AAPL", "190")
    near, far = await approved(ops_nc, "AAPL", "190"), await approved(ops_nc, "AAPL", "100")

    report = await audit(ops_nc, [near, far], lookback_s=0.3)

    assert report.market["ticks read"] < 10
    assert list(named(report)) == [far.fact.intent_id]
    assert "the market was 190 (AAPL, MARKET #2001 " in named(report)[far.fact.intent_id]


async def test_a_symbol_without_a_tick_near_its_approval_is_compared_with_the_tick_before(
    ops_nc: NATS,
) -> None:
    await ticks(ops_nc, "AAPL", "100", count=50)
    await asyncio.sleep(0.5)
    await ticks(ops_nc, "MSFT", "300")
    quiet, moved = await approved(ops_nc, "AAPL", "101"), await approved(ops_nc, "AAPL", "300")

    report = await audit(ops_nc, [quiet, moved], lookback_s=0.3)

    assert list(named(report)) == [moved.fact.intent_id]
    assert "the market was 100 (AAPL, MARKET #50 " in named(report)[moved.fact.intent_id]
    assert report.market["approvals compared"] == 2


async def test_an_approval_older_than_every_tick_market_holds_of_its_symbol_is_only_counted(
    ops_nc: NATS,
) -> None:
    await ticks(ops_nc, "AAPL", "100")
    expired = await approved(ops_nc, "AAPL", "1")  # its market tick is removed below
    await ticks(ops_nc, "AAPL", "100")
    await ops_nc.jetstream().purge_stream(t.MARKET, seq=2)  # MARKET now starts at #2
    never_priced = await approved(ops_nc, "ZZZZ", "1")

    report = await audit(ops_nc, [expired, never_priced], lookback_s=300)

    assert list(named(report)) == [never_priced.fact.intent_id]
    assert (
        "no tick of ZZZZ was stored in MARKET before the approval"
        in named(report)[never_priced.fact.intent_id]
    )
    assert any(n.startswith("1 approvals were stored before the oldest tick") for n in report.notes)


async def test_without_an_approval_market_is_not_read(ops_nc: NATS) -> None:
    await ticks(ops_nc, "AAPL", "100", count=10)

    report = await audit(ops_nc, [], lookback_s=300)

    assert report.market == {} and report.discrepancies == []
