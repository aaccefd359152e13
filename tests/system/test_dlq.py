"""`tradeops dlq`: list, show, retry (original and repaired bytes) and purge on a running stack."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from typer.testing import CliRunner, Result

from bus import Verifier
from bus.headers import DLQ_RETRY as RETRY_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.replay import read_stream
from contracts import Identity
from contracts import topology as t
from contracts.records import DeadLetterRetried, DeadLettersPurged
from ops.audit.trail import find_trail
from ops.cli import app
from ops.dlq import RETRIED_SUBJECT, first_message
from ops.stack.embedded import EmbeddedStack
from tests.support.pipeline import count_subject, eventually
from tests.support.stack import connect_to, new_id, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-test-"))  # outside pytest's tmp: see stack_dir
    try:
        async with running_stack(base / "stack") as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ops(stack: EmbeddedStack) -> AsyncIterator[NATS]:
    nc = await connect_to(stack, Identity.OPS)
    await wait_for_prices(nc, ("BTC-USD", "ETH-USD"))
    yield nc
    await nc.close()


async def wait_for_prices(ops: NATS, symbols: tuple[str, ...]) -> None:
    """Wait for the feed's first ticks: without a price an intent is rejected, not filled."""

    async def ticking() -> bool:
        counts = [await count_subject(ops, t.MARKET, f"market.tick.{s}") for s in symbols]
        return all(counts)

    await eventually(ticking, timeout_s=20)
    await asyncio.sleep(0.3)  # the agents' subscriptions have them too


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(stack: EmbeddedStack, ops: NATS) -> AsyncIterator[NATS]:
    nc = await connect_to(stack, Identity.CLIENT)
    yield nc
    await nc.close()


async def tradeops(stack: EmbeddedStack, *args: str) -> Result:
    """Run `tradeops dlq ...` against the stack (in a thread: the CLI runs its own loop)."""
    argv = ["dlq", *args, "--data-dir", str(stack.settings.data_dir)]

    def invoke() -> Result:
        return CliRunner().invoke(app, argv)

    return await asyncio.to_thread(invoke)


def body(intent_id: str, quantity: str = "0.01", symbol: str = "BTC-USD") -> dict[str, Any]:
    return {"intent_id": intent_id, "account": "paper-1", "symbol": symbol, "side": "buy",
            "quantity": quantity}  # fmt: skip


async def dead_letter_of(stack: EmbeddedStack, intent_id: str) -> dict[str, Any]:
    """Wait until `dlq list` shows the intent's dead letter; return its row."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        result = await tradeops(stack, "list", "--json")
        assert result.exit_code == 0, result.output
        found[:] = [x for x in json.loads(result.stdout) if x["intent_id"] == intent_id]
        return bool(found)

    await eventually(listed, timeout_s=15)
    return found[0]


async def test_malformed_intent_is_listed_then_its_repair_reaches_a_terminal_outcome(
    stack: EmbeddedStack, ops: NATS, client: NATS, tmp_path: Path
) -> None:
    intent_id = new_id()
    malformed = json.dumps(body(intent_id, quantity="-1")).encode()
    await client.jetstream().publish("intent.submitted.BTC-USD", malformed)

    row = await dead_letter_of(stack, intent_id)
    assert (row["agent"], row["reason"]) == ("ingestor", "invalid_payload")
    assert row["original_subject"] == "intent.submitted.BTC-USD"
    assert "quantity" in row["error"] and row["retried_as"] == []

    repaired = tmp_path / "repaired.json"
    repaired.write_bytes(json.dumps(body(intent_id, quantity="0.01")).encode())
    result = await tradeops(stack, "retry", str(row["id"]), "--payload", str(repaired))
    assert result.exit_code == 0, result.output
    new_seq = int(result.stdout.split("as SUBMISSIONS #")[1].split()[0])

    async def terminal() -> bool:
        verifier = Verifier.from_dir(stack.settings.certs_dir)
        return (await find_trail(ops, intent_id, verifier)).outcome == "filled"

    await eventually(terminal, timeout_s=30)
    trail = await find_trail(ops, intent_id, Verifier.from_dir(stack.settings.certs_dir))
    kinds = [e.kind for e in trail.entries]
    assert kinds.count("ledger.posted") == 1 and "dead_letter.retried" in kinds

    republished = await first_message(ops, t.SUBMISSIONS, start_seq=new_seq)
    assert republished is not None and republished.seq == new_seq
    assert republished.data == repaired.read_bytes()
    assert republished.headers[RETRY_HEADER] == str(row["id"])
    assert republished.headers[SIGNER_HEADER] == "ops"

    records = [m async for m in read_stream(ops, t.DLQ, subject=f"{RETRIED_SUBJECT}.*")]
    mine = [
        r for r in records if DeadLetterRetried.model_validate_json(r.data).dlq_seq == row["id"]
    ]
    assert len(mine) == 1
    verifier = Verifier.from_dir(stack.settings.certs_dir)
    assert verifier.check(mine[0].subject, mine[0].data, mine[0].headers) == ("valid", "ops")
    record = DeadLetterRetried.model_validate_json(mine[0].data)
    assert record.repaired and (record.published_stream, record.published_seq) == (
        "SUBMISSIONS",
        new_seq,
    )
    assert record.original_stream == "SUBMISSIONS"
    assert record.original_sha256 == hashlib.sha256(malformed).hexdigest()
    assert record.payload_sha256 == hashlib.sha256(repaired.read_bytes()).hexdigest()
    listed = await dead_letter_of(stack, intent_id)
    assert listed["retried_as"] == [f"SUBMISSIONS #{new_seq}"]


async def test_show_prints_the_original_bytes_headers_and_error(
    stack: EmbeddedStack, client: NATS
) -> None:
    intent_id = new_id()
    raw = json.dumps(body(intent_id, symbol="ETH-USD")).encode()  # published on another symbol
    await client.jetstream().publish("intent.submitted.BTC-USD", raw)
    row = await dead_letter_of(stack, intent_id)

    shown = await tradeops(stack, "show", str(row["id"]), "--json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["reason"] == "subject_mismatch" and "ETH-USD" in doc["error"]
    assert doc["original_text"] == raw.decode()
    assert doc["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert doc["original_stream"] == "SUBMISSIONS" and doc["signature"] == "valid"
    assert "Nats-Msg-Id" in doc["original_headers"] or doc["original_headers"] == {}

    text = await tradeops(stack, "show", str(row["id"]))
    assert f"dead letter DLQ #{row['id']}" in text.stdout and raw.decode() in text.stdout


async def test_retry_of_the_original_bytes_is_recorded_and_not_repeated_by_accident(
    stack: EmbeddedStack, ops: NATS, client: NATS
) -> None:
    intent_id = new_id()
    unknown_account = json.dumps(body(intent_id) | {"account": "nobody"}).encode()
    await client.jetstream().publish("intent.submitted.BTC-USD", unknown_account)
    row = await dead_letter_of(stack, intent_id)

    first = await tradeops(stack, "retry", str(row["id"]))
    assert first.exit_code == 0, first.output
    assert "original bytes re-published on intent.submitted.BTC-USD" in first.stdout
    again = await tradeops(stack, "retry", str(row["id"]))
    assert again.exit_code == 3 and "already_retried" in again.output

    async def dead_lettered_twice() -> bool:
        letters = await tradeops(stack, "list", "--json", "--agent", "ingestor")
        rows: list[dict[str, Any]] = json.loads(letters.stdout)
        return [x["intent_id"] for x in rows].count(intent_id) == 2

    await eventually(dead_lettered_twice, timeout_s=15)  # still no such account
    record = [
        DeadLetterRetried.model_validate_json(m.data)
        async for m in read_stream(ops, t.DLQ, subject=f"{RETRIED_SUBJECT}.*")
    ]
    mine = [r for r in record if r.dlq_seq == row["id"]]
    assert len(mine) == 1 and not mine[0].repaired
    assert mine[0].payload_sha256 == mine[0].original_sha256


async def test_show_of_a_missing_or_non_dead_letter_id_says_so(stack: EmbeddedStack) -> None:
    missing = await tradeops(stack, "show", "999999")
    assert missing.exit_code == 3 and "not_found" in missing.output


async def test_purge_removes_dead_letters_before_the_time_and_records_it(
    stack: EmbeddedStack, ops: NATS, client: NATS
) -> None:
    old = [new_id(), new_id()]
    for intent_id in old:
        await client.jetstream().publish(
            "intent.submitted.BTC-USD", json.dumps(body(intent_id, quantity="x")).encode()
        )
    for intent_id in old:
        await dead_letter_of(stack, intent_id)
    await asyncio.sleep(0.05)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.05)
    young = new_id()
    await client.jetstream().publish(
        "intent.submitted.BTC-USD", json.dumps(body(young, quantity="x")).encode()
    )
    await dead_letter_of(stack, young)
    before = json.loads((await tradeops(stack, "list", "--json")).stdout)
    expected = sum(datetime.fromisoformat(x["stored_at"]) < cutoff for x in before)

    result = await tradeops(stack, "purge", "--before", cutoff.isoformat(), "--yes")
    assert result.exit_code == 0, result.output
    assert f"removed {expected} dead letters" in result.stdout

    after = {x["intent_id"] for x in json.loads((await tradeops(stack, "list", "--json")).stdout)}
    assert young in after and not set(old) & after
    records = [
        DeadLettersPurged.model_validate_json(m.data)
        async for m in read_stream(ops, t.DLQ, subject="dlq.purged")
    ]
    purged_ids = {str(x.intent_id) for r in records for x in r.letters}
    assert set(old) <= purged_ids and records[-1].purged == expected
    nothing = await tradeops(stack, "purge", "--before", cutoff.isoformat(), "--yes")
    assert "nothing removed" in nothing.stdout
