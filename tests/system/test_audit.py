"""`tradeops audit`: a clean run passes; forged, altered, incomplete or unsigned records fail it.

One embedded stack for the module. The clean audit runs in the fixture, before any test tampers
with the record; each tampering test then asserts that the audit names ITS problem (stream,
sequence, intent), whatever the earlier tests left behind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from typer.testing import CliRunner, Result

from bus.deadletter import intent_id_hint
from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.replay import StoredMsg, read_stream
from contracts import Identity, TradeIntent
from contracts import topology as t
from ops.cli import app
from ops.stack.embedded import EmbeddedStack
from tests.support import events
from tests.support.pipeline import count_subject, eventually, publisher_for
from tests.support.stack import (
    connect_to,
    new_id,
    outcomes,
    running_stack,
    terminal_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def order(symbol: str, side: str, quantity: str, intent_id: str | None = None) -> dict[str, Any]:
    return {"intent_id": intent_id or new_id(), "account": "paper-1", "symbol": symbol,
            "side": side, "quantity": quantity}  # fmt: skip


@dataclass
class Scenario:
    stack: EmbeddedStack
    ops: NATS
    filled: list[str]
    rejected: str
    clean: Result
    partial: Result


async def tradeops(stack: EmbeddedStack, *args: str) -> Result:
    """Run `tradeops ...` (audit and dlq) against the stack, in a thread."""
    argv = [*args, "--data-dir", str(stack.settings.data_dir)]

    def invoke() -> Result:
        return CliRunner().invoke(app, argv)

    return await asyncio.to_thread(invoke)


async def verify(stack: EmbeddedStack, *extra: str) -> tuple[Result, dict[str, Any]]:
    result = await tradeops(stack, "audit", "verify", "--json", *extra)
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.stdout)


async def submit_and_settle(stack: EmbeddedStack, ops: NATS, tmp: Path) -> tuple[list[str], str]:
    """Fills, a risk rejection, an unreadable submission, and a repaired dead letter."""
    client = await connect_to(stack, Identity.CLIENT)
    js = client.jetstream()
    fills = [order("BTC-USD", "buy", "0.01"), order("ETH-USD", "buy", "0.1"),
             order("BTC-USD", "sell", "0.005")]  # fmt: skip
    too_big = order("BTC-USD", "buy", "100")
    broken = order("ETH-USD", "buy", "-1")
    for body in [*fills, too_big, broken]:
        await js.publish(f"intent.submitted.{body['symbol']}", json.dumps(body).encode())
    await js.publish("intent.submitted.BTC-USD", b"not json at all")
    await client.close()
    await eventually(lambda: _dead_letters(ops, 2), timeout_s=20)
    letters = json.loads((await tradeops(stack, "dlq", "list", "--json")).stdout)
    broken_seq = next(x["id"] for x in letters if x["intent_id"] == broken["intent_id"])
    repaired = tmp / "repaired.json"
    repaired.write_text(json.dumps(broken | {"quantity": "0.2"}))
    retried = await tradeops(stack, "dlq", "retry", str(broken_seq), "--payload", str(repaired))
    assert retried.exit_code == 0, retried.output
    ids = [b["intent_id"] for b in [*fills, broken, too_big]]

    async def settled() -> bool:
        seen = await outcomes(ops)
        return all(terminal_count(seen.get(i, {})) >= 1 for i in ids) and all(  # type: ignore[arg-type]
            seen[b["intent_id"]]["ledger.posted"] == 1 for b in [*fills, broken]
        )

    await eventually(settled, timeout_s=40)
    return [b["intent_id"] for b in [*fills, broken]], too_big["intent_id"]


async def wait_for_prices(ops: NATS, symbols: tuple[str, ...]) -> None:
    """Wait for the feed's first ticks: without a price an intent is rejected, not filled."""

    async def ticking() -> bool:
        return all([await count_subject(ops, t.MARKET, f"market.tick.{s}") for s in symbols])

    await eventually(ticking, timeout_s=20)
    await asyncio.sleep(0.3)  # the agents' subscriptions have them too


async def _dead_letters(ops: NATS, expected: int) -> bool:
    return await count_subject(ops, t.DLQ, "dlq.ingestor.*") >= expected


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scenario() -> AsyncIterator[Scenario]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-test-"))  # outside pytest's tmp: see stack_dir
    try:
        async with running_stack(base / "stack") as stack:
            ops = await connect_to(stack, Identity.OPS)
            await wait_for_prices(ops, ("BTC-USD", "ETH-USD"))
            filled, rejected = await submit_and_settle(stack, ops, base)
            clean = await tradeops(stack, "audit", "verify", "--json")
            partial = await tradeops(
                stack, "audit", "verify", "--json", "--from-seq", "3", "--no-postgres"
            )
            yield Scenario(stack, ops, filled, rejected, clean, partial)
            await ops.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def stored(ops: NATS, stream: str, prefix: str) -> list[StoredMsg]:
    return [m async for m in read_stream(ops, stream) if m.subject.startswith(prefix)]


def found(report: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    """The discrepancies whose fields equal `match` (`what` matches as a substring)."""
    what = match.pop("what", "")
    return [
        d
        for d in report["discrepancies"]
        if what in d["what"] and all(d.get(k) == v for k, v in match.items())
    ]


async def test_clean_run_passes(scenario: Scenario) -> None:
    result = scenario.clean
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["discrepancies"] == [] and report["warnings"] == []
    assert report["intents"] == {"filled": 4, "rejected": 1, "dead_lettered": 1}
    assert report["signatures"].get("invalid", 0) == 0
    assert report["signatures"]["unsigned"] >= 6  # the client's submissions
    assert report["ledger"]["positions and cash"] == "match the fills"


async def test_replay_from_a_sequence_checks_only_intents_submitted_in_the_window(
    scenario: Scenario,
) -> None:
    result = scenario.partial
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["window"] == "from SUBMISSIONS #3 (the other streams from its time)"
    assert report["intents"]["unchecked"] >= 1  # submitted at SUBMISSIONS #1 and #2
    assert report["events"] < json.loads(scenario.clean.stdout)["events"]
    assert any(
        "only on a replay from the start" in n or "no Postgres" in n for n in report["notes"]
    )


async def test_trail_shows_each_event_with_producer_signature_and_timing(
    scenario: Scenario,
) -> None:
    intent_id = scenario.filled[0]
    result = await tradeops(scenario.stack, "audit", "trail", intent_id, "--json")
    assert result.exit_code == 0, result.output
    trail = json.loads(result.stdout)
    assert trail["outcome"] == "filled" and trail["problems"] == []
    events = trail["events"]
    assert [e["kind"] for e in events] == [
        "intent.submitted", "intent.accepted", "intent.analyzed", "risk.approved",
        "order.filled", "ledger.posted",
    ]  # fmt: skip
    assert [e["producer"] for e in events] == [
        "client", "ingestor", "analyst", "risk", "executor", "ledger",
    ]  # fmt: skip
    assert [e["signature"] for e in events] == ["unsigned"] + ["valid"] * 5
    deltas = [e["since_submission_ms"] for e in events]
    assert deltas[0] == 0 and deltas == sorted(deltas)
    text = await tradeops(scenario.stack, "audit", "trail", scenario.rejected)
    assert f"intent {scenario.rejected}: rejected" in text.stdout


async def test_forged_signature_is_named(scenario: Scenario) -> None:
    fill = (await stored(scenario.ops, t.ORDERS, "order.filled."))[0]
    forged = fill.data.replace(b'"broker":"paper"', b'"broker":"papes"')
    assert forged != fill.data
    headers = {k: fill.headers[k] for k in (SIGNER_HEADER, SIGNATURE_HEADER)}
    ack = await scenario.ops.jetstream().publish(fill.subject, forged, headers=headers)

    result, report = await verify(scenario.stack)
    assert result.exit_code == 1
    named = found(report, check="signature", stream="ORDERS", seq=ack.seq, what="invalid")
    assert named, report["discrepancies"]
    assert named[0]["intent_id"] == str(intent_id_hint(forged))
    assert "FAIL" in (await tradeops(scenario.stack, "audit", "verify")).stdout


async def test_altered_ledger_row_is_named(scenario: Scenario) -> None:
    posted = (await stored(scenario.ops, t.LEDGER, "ledger.posted."))[0]
    journal_seq = json.loads(posted.data)["journal_seq"]
    conn = await asyncpg.connect(scenario.stack.database_url)
    try:
        await conn.execute("ALTER TABLE journal_lines DISABLE TRIGGER USER")
        await conn.execute(
            "UPDATE journal_lines SET amount = amount + 1 WHERE journal_seq = $1 AND line_no = 1",
            journal_seq,
        )
        await conn.execute("ALTER TABLE journal_lines ENABLE TRIGGER USER")
    finally:
        await conn.close()

    result, report = await verify(scenario.stack)
    assert result.exit_code == 1
    in_postgres = found(report, stream="postgres", what=f"journal_seq {journal_seq}: entry_hash")
    assert in_postgres and "altered" in in_postgres[0]["what"], report["discrepancies"]
    assert found(report, stream="LEDGER", seq=posted.seq, what="lines differ")


async def test_fill_without_approval_is_named(scenario: Scenario) -> None:
    intent_id = uuid.uuid4()
    intent = TradeIntent.model_validate(order("BTC-USD", "buy", "0.01", str(intent_id)))
    fill = events.order_filled(intent, price="65000", fee="0.07", causation_id=uuid.uuid4())
    executor = publisher_for(scenario.ops, scenario.stack.settings.certs_dir, Identity.EXECUTOR)
    await executor.publish([events.emit(fill)])

    result, report = await verify(scenario.stack)
    assert result.exit_code == 1
    named = found(report, check="chain", intent_id=str(intent_id), what="fill without approval")
    assert named and named[0]["stream"] == "ORDERS", report["discrepancies"]
    trail = await tradeops(scenario.stack, "audit", "trail", str(intent_id))
    assert trail.exit_code == 1 and "fill without approval" in trail.stdout


async def test_missing_signature_is_named(scenario: Scenario) -> None:
    fill = (await stored(scenario.ops, t.ORDERS, "order.filled."))[1]
    ack = await scenario.ops.jetstream().publish(fill.subject, fill.data)

    result, report = await verify(scenario.stack)
    assert result.exit_code == 1
    named = found(report, check="signature", stream="ORDERS", seq=ack.seq, what="missing signature")
    assert named, report["discrepancies"]
