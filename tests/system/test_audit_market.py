"""`tradeops audit verify` compares every approval's price with MARKET at its time (check `market`).

One embedded stack for the module. The clean audit runs in the fixture, before any test tampers
with the record. Each attack is then made as a compromised risk gate would make it: connected
with the risk agent's own certificate, its approvals signed with the risk agent's own key (so
provenance and signatures pass), and each test asserts that the audit names ITS approval.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from typer.testing import CliRunner, Result

from bus import Credentials, Signer
from bus.replay import read_all, read_latest, read_one
from contracts import Identity, IntentAnalyzed, MarketTick, RiskApproved, TradeIntent
from contracts import subjects as s
from contracts import topology as t
from ops.cli import app
from ops.stack.embedded import EmbeddedStack
from tests.support import events
from tests.support.pipeline import count_subject, eventually
from tests.support.stack import connect_to, new_id, outcomes, running_stack, terminal_count

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

FED = ("BTC-USD", "ETH-USD")
"""Symbols the stack's feed prices."""
UNFED = "SOL-USD"
"""A symbol only ops prices here (ops may publish `market.tick.*`, as the ingestor does)."""


@dataclass
class Desk:
    stack: EmbeddedStack
    ops: NATS
    risk: NATS
    signer: Signer
    clean: Result


async def tradeops(stack: EmbeddedStack, *args: str) -> Result:
    argv = [*args, "--data-dir", str(stack.settings.data_dir)]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def verify(stack: EmbeddedStack, *extra: str) -> tuple[Result, dict[str, Any]]:
    result = await tradeops(stack, "audit", "verify", "--json", "--no-postgres", *extra)
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.stdout)


def market_findings(report: dict[str, Any], intent_id: object) -> list[str]:
    return [
        d["what"]
        for d in report["discrepancies"]
        if d["check"] == "market" and d["intent_id"] == str(intent_id)
    ]


async def trade(stack: EmbeddedStack, ops: NATS, bodies: list[dict[str, str]]) -> None:
    client = await connect_to(stack, Identity.CLIENT)
    try:
        for body in bodies:
            subject = s.of(s.INTENT_SUBMITTED, body["symbol"])
            await client.jetstream().publish(subject, json.dumps(body).encode())
    finally:
        await client.close()

    async def settled() -> bool:
        seen = await outcomes(ops)
        return all(terminal_count(seen.get(b["intent_id"], {})) >= 1 for b in bodies)  # type: ignore[arg-type]

    await eventually(settled, timeout_s=40)


def order(symbol: str, quantity: str, side: str = "buy") -> dict[str, str]:
    return {"intent_id": new_id(), "account": "paper-1", "symbol": symbol, "side": side,
            "quantity": quantity}  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk() -> AsyncIterator[Desk]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-market-"))  # outside pytest's tmp: see stack
    try:
        async with running_stack(base / "stack") as stack:
            ops = await connect_to(stack, Identity.OPS)

            async def ticking() -> bool:
                return all([await count_subject(ops, t.MARKET, f"market.tick.{x}") for x in FED])

            await eventually(ticking, timeout_s=20)
            await asyncio.sleep(0.3)  # the agents' subscriptions have the first ticks too
            await trade(stack, ops, [order("BTC-USD", "0.01"), order("ETH-USD", "0.1"),
                                     order("BTC-USD", "0.005", "sell")])  # fmt: skip
            clean = await tradeops(stack, "audit", "verify", "--json", "--no-postgres")
            certs = stack.settings.certs_dir
            risk = await connect_to(stack, Identity.RISK)
            signer = Signer.from_file(
                Identity.RISK, Credentials(Identity.RISK, certs).signing_key_file
            )
            yield Desk(stack, ops, risk, signer, clean)
            await risk.close()
            await ops.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def approve(desk: Desk, approval: RiskApproved | bytes, intent: TradeIntent) -> int:
    """Store an approval as the compromised gate: risk's connection, risk's key; its RISK seq."""
    data = approval if isinstance(approval, bytes) else approval.model_dump_json().encode()
    subject = s.intent_event(s.RISK_APPROVED, intent.symbol, intent.intent_id)
    ack = await desk.risk.jetstream().publish(
        subject, data, headers=desk.signer.headers(subject, data)
    )
    return int(ack.seq)


async def last_price(ops: NATS, symbol: str) -> Decimal:
    (latest,) = await read_latest(ops, t.MARKET, s.of(s.MARKET_TICK, symbol))
    return MarketTick.model_validate_json(latest.data).price


async def ops_tick(ops: NATS, symbol: str, price: str) -> None:
    tick = MarketTick(event_id=uuid.uuid4(), producer=Identity.OPS, symbol=symbol,
                      price=Decimal(price), observed_at=datetime.now(UTC))  # fmt: skip
    await ops.jetstream().publish(s.of(s.MARKET_TICK, symbol), tick.model_dump_json().encode())


async def test_a_normal_run_compares_every_approval_with_the_market_and_passes(desk: Desk) -> None:
    assert desk.clean.exit_code == 0, desk.clean.output
    report = json.loads(desk.clean.stdout)
    approvals = await count_subject(desk.ops, t.RISK, "risk.approved.>")

    assert report["ok"] and report["discrepancies"] == [] and report["warnings"] == []
    assert approvals == 3
    assert report["market"]["approvals compared"] == approvals
    assert report["market"]["collar"] == "5%" and report["market"]["ticks read"] > 0


async def test_an_intent_the_limits_refuse_approved_at_a_hundredth_of_the_market_is_named(
    desk: Desk,
) -> None:
    big = order("BTC-USD", "100")  # over max_quantity and max_notional at the market price
    await trade(desk.stack, desk.ops, [big])
    (analyzed,) = await read_all(desk.ops, t.INTENTS, f"intent.analyzed.BTC-USD.{big['intent_id']}")
    cause = IntentAnalyzed.model_validate_json(analyzed.data)
    market = await last_price(desk.ops, "BTC-USD")
    cheap = (market / 100).quantize(Decimal("0.01"))
    forged = events.risk_approved(cause.intent, reference_price=cheap,
                                  causation_id=cause.event_id)  # fmt: skip
    seq = await approve(desk, forged, cause.intent)

    result, report = await verify(desk.stack)

    assert result.exit_code == 1
    (what,) = market_findings(report, big["intent_id"])
    assert what.startswith(f"approved at {cheap} while the market was ")
    assert "% away, beyond the 5% collar; approval stored " in what
    assert [d["seq"] for d in report["discrepancies"] if d["check"] == "market"].count(seq) == 1
    text = await tradeops(desk.stack, "audit", "verify", "--no-postgres")
    assert text.exit_code == 1
    assert f"[market] RISK #{seq} intent {big['intent_id']}: approved at {cheap}" in text.stdout


async def test_just_past_the_collar_is_named_and_inside_it_is_not_a_market_finding(
    desk: Desk,
) -> None:
    market = await last_price(desk.ops, "ETH-USD")
    outside = events.trade_intent(symbol="ETH-USD", quantity="1")
    inside = events.trade_intent(symbol="ETH-USD", quantity="1")
    await approve(desk, events.risk_approved(outside, reference_price=market * Decimal("1.07")),
                  outside)  # fmt: skip
    await approve(desk, events.risk_approved(inside, reference_price=market * Decimal("0.98")),
                  inside)  # fmt: skip

    result, report = await verify(desk.stack)

    assert result.exit_code == 1
    assert market_findings(report, outside.intent_id)
    assert market_findings(report, inside.intent_id) == []  # the collar is the gate's own bound


async def test_an_approval_stamped_back_to_an_old_price_is_judged_by_when_it_was_stored(
    desk: Desk,
) -> None:
    await ops_tick(desk.ops, UNFED, "100")
    await asyncio.sleep(1.1)  # the window below starts after this tick
    honest = events.trade_intent(symbol=UNFED, quantity="1")
    first = await approve(desk, events.risk_approved(honest, reference_price="100"), honest)
    stored_first = await read_one(desk.ops, t.RISK, first)
    assert stored_first is not None
    await ops_tick(desk.ops, UNFED, "200")
    backdated = events.trade_intent(symbol=UNFED, quantity="1")
    stamp = stored_first.timestamp - timedelta(seconds=1)  # when the market was still 100
    await approve(desk, events.risk_approved(backdated, reference_price="100", ts=stamp),
                  backdated)  # fmt: skip

    since = (stored_first.timestamp - timedelta(milliseconds=1)).isoformat()
    for extra in ((), ("--since", since)):  # the window's MARKET starts before it: same verdict
        _, report = await verify(desk.stack, *extra)
        assert market_findings(report, honest.intent_id) == [], extra
        (what,) = market_findings(report, backdated.intent_id)
        assert what.startswith("approved at 100 while the market was 200 (SOL-USD, MARKET #")


async def test_an_approval_of_a_symbol_never_priced_is_named(desk: Desk) -> None:
    unpriced = events.trade_intent(symbol="DOGE-USD", quantity="1000")
    await approve(desk, events.risk_approved(unpriced, reference_price="0.1"), unpriced)

    _, report = await verify(desk.stack)

    (what,) = market_findings(report, unpriced.intent_id)
    assert what.startswith("approved at 0.1, but no tick of DOGE-USD was stored in MARKET before")


async def test_an_approval_with_a_price_no_one_can_compare_is_named_not_skipped(
    desk: Desk,
) -> None:
    sneaky = events.trade_intent(symbol="BTC-USD", quantity="1")
    body = json.loads(events.risk_approved(sneaky, reference_price="1").model_dump_json())
    for price in ("NaN", 65000, "6.5e4"):
        forged = json.dumps(body | {"reference_price": price}).encode()
        await approve(desk, forged, sneaky)

    _, report = await verify(desk.stack)

    found = market_findings(report, sneaky.intent_id)
    assert len(found) == 3 and all("is not a valid price" in what for what in found)
