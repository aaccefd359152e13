"""One trail: `intent show` and `audit trail` agree on every intent, and neither can be fooled.

A whole stack; a mixed batch (filled, rejected by the risk gate, dead-lettered as invalid), then
what an attacker holding only the client certificate would try:
- a garbage submission carrying the victim's id in the unsigned `Tradeops-Intent-Id` header;
- a second submission reusing the victim's id with other content (dead-lettered
  `intent_id_conflict`: a foreign dead letter under the victim's id);
- a submission whose payload claims the victim's id on another symbol's subject.
Each command is run as a user runs it (`tradeops ... --json` through the real CLI app), with the
id spelled as the ingestor accepts it (upper case, braces, `urn:uuid:`, no hyphens).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from typer.testing import CliRunner, Result

from bus.headers import INTENT as INTENT_HEADER
from contracts import Identity
from contracts import subjects as s
from ops.cli import app
from ops.stack.embedded import EmbeddedStack
from tests.support.pipeline import eventually
from tests.support.stack import connect_to, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


def order(intent_id: str, symbol: str = "BTC-USD", quantity: str = "0.01") -> dict[str, Any]:
    return {"intent_id": intent_id, "account": "paper-1", "symbol": symbol, "side": "buy",
            "quantity": quantity}  # fmt: skip


@dataclass
class Batch:
    stack: EmbeddedStack
    ops: NATS
    client: NATS
    filled: str
    rejected: str
    invalid: str
    victim: str


async def cli(stack: EmbeddedStack, *args: str) -> Result:
    argv = [*args, "--data-dir", str(stack.settings.data_dir)]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def show(stack: EmbeddedStack, *args: str) -> dict[str, Any]:
    result = await cli(stack, *args, "--json")
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


async def settled(stack: EmbeddedStack, intent_id: str) -> bool:
    doc = await show(stack, "intent", "show", intent_id)
    return doc["outcome"] in ("filled", "rejected", "dead_lettered")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def batch() -> AsyncIterator[Batch]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-test-"))
    async with running_stack(base / "stack") as stack:
        ops = await connect_to(stack, Identity.OPS)
        client = await connect_to(stack, Identity.CLIENT)
        js = client.jetstream()
        ids = [str(uuid.uuid4()) for _ in range(4)]
        filled, rejected, invalid, victim = ids
        await js.publish(s.of(s.INTENT_SUBMITTED, "BTC-USD"), json.dumps(order(filled)).encode())
        await js.publish(  # over the instrument's max quantity
            s.of(s.INTENT_SUBMITTED, "BTC-USD"), json.dumps(order(rejected, quantity="50")).encode()
        )
        await js.publish(  # not a quantity: dead-lettered as invalid
            s.of(s.INTENT_SUBMITTED, "BTC-USD"), json.dumps(order(invalid, quantity="-1")).encode()
        )
        await js.publish(
            s.of(s.INTENT_SUBMITTED, "ETH-USD"), json.dumps(order(victim, "ETH-USD")).encode()
        )
        for iid in ids:
            await eventually(lambda iid=iid: settled(stack, iid), timeout_s=60)
        # the attacker, after the victim's intent filled
        await js.publish(
            s.of(s.INTENT_SUBMITTED, "BTC-USD"), b"\x00garbage", headers={INTENT_HEADER: victim}
        )
        await js.publish(  # same id, other content: a conflict, dead-lettered under the id
            s.of(s.INTENT_SUBMITTED, "ETH-USD"),
            json.dumps(order(victim, "ETH-USD", "0.2")).encode(),
        )
        await js.publish(  # the payload's symbol disagrees with the subject
            s.of(s.INTENT_SUBMITTED, "AAPL"), json.dumps(order(victim, "ETH-USD")).encode()
        )

        async def attacks_handled() -> bool:
            doc = await show(stack, "audit", "trail", victim)
            return sum(e["kind"] == "dead_letter" for e in doc["events"]) >= 2

        await eventually(attacks_handled, timeout_s=30)
        try:
            yield Batch(stack, ops, client, filled, rejected, invalid, victim)
        finally:
            await client.close()
            await ops.close()


async def test_intent_show_and_audit_trail_agree_on_every_intent_of_a_mixed_batch(
    batch: Batch,
) -> None:
    expected = {
        batch.filled: "filled",
        batch.rejected: "rejected",
        batch.invalid: "dead_lettered",
        batch.victim: "filled",
    }
    for intent_id, outcome in expected.items():
        shown = await show(batch.stack, "intent", "show", intent_id)
        audited = await show(batch.stack, "audit", "trail", intent_id)
        assert shown["outcome"] == audited["outcome"] == outcome, intent_id
        assert shown["reasons"] == audited["reasons"]
        assert [(e["stream"], e["seq"]) for e in shown["events"]] == [
            (e["stream"], e["seq"]) for e in audited["events"]
        ]


async def test_a_forged_intent_id_header_puts_nothing_under_the_victim(batch: Batch) -> None:
    doc = await show(batch.stack, "intent", "show", batch.victim)
    for event in doc["events"]:
        assert event["body"].get("intent_id") == batch.victim, event
        assert "garbage" not in json.dumps(event["body"])


async def test_foreign_dead_letters_add_no_reason_to_a_filled_intent(batch: Batch) -> None:
    doc = await show(batch.stack, "audit", "trail", batch.victim)
    assert doc["outcome"] == "filled" and doc["reasons"] == [] and doc["problems"] == []
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds.count("ledger.posted") == 1
    assert (
        kinds.count("dead_letter") == 2
    )  # the conflict and the misrouted copy, shown, not counted


@pytest.mark.parametrize(
    "spell",
    [str.upper, lambda i: "{" + i + "}", lambda i: f"urn:uuid:{i}", lambda i: i.replace("-", "")],
    ids=["upper", "braces", "urn", "hex"],
)
async def test_an_intent_is_found_by_any_spelling_the_ingestor_accepts(
    batch: Batch, spell: Any
) -> None:
    for command in (("intent", "show"), ("audit", "trail")):
        doc = await show(batch.stack, *command, spell(batch.filled))
        assert doc["intent_id"] == batch.filled and doc["outcome"] == "filled", command


async def test_a_text_that_is_no_intent_id_is_a_one_line_usage_error(batch: Batch) -> None:
    for command in (("intent", "show"), ("audit", "trail")):
        result = await cli(batch.stack, *command, "not-a-uuid")
        assert result.exit_code == 2
        assert "not an intent id" in result.output and "Traceback" not in result.output


async def ask(client: NATS, body: bytes) -> dict[str, Any]:
    reply = await client.request(s.INTENT_OUTCOME, body, timeout=10)
    doc: dict[str, Any] = json.loads(reply.data)
    return doc


async def test_a_client_asking_intent_outcome_hears_what_intent_show_says(batch: Batch) -> None:
    for intent_id in (batch.filled, batch.rejected, batch.invalid, batch.victim):
        shown = await show(batch.stack, "intent", "show", intent_id)
        asked = await ask(batch.client, json.dumps({"intent_id": intent_id.upper()}).encode())
        assert asked["intent_id"] == intent_id
        assert asked["outcome"] == shown["outcome"]
        assert asked["reasons"] == shown["reasons"]
        assert asked["terminal"] is True
        assert set(asked) == {"intent_id", "outcome", "terminal", "reasons"}  # nothing more


async def test_outcome_requests_a_client_gets_wrong_are_answered_with_a_named_error(
    batch: Batch,
) -> None:
    unknown = await ask(batch.client, json.dumps({"intent_id": str(uuid.uuid4())}).encode())
    assert unknown["outcome"] == "unknown" and unknown["terminal"] is False
    for body, error in [
        (b"\x00\xff not json", "invalid_query"),
        (b'{"intent_id": "DROP TABLE"}', "invalid_query: intent_id is not a UUID"),
        (json.dumps({"intent_id": batch.filled, "account": "x"}).encode(), "invalid_query"),
        (b"{" + b" " * 5000 + b"}", "invalid_query: body over 1024 bytes"),
        (b"", "invalid_query"),
    ]:
        answer = await ask(batch.client, body)
        assert answer["error"].startswith(error), (body[:40], answer)
        assert "outcome" not in answer
    await batch.client.publish(s.INTENT_OUTCOME, b"no reply subject")  # ignored, nothing breaks
    again = await ask(batch.client, json.dumps({"intent_id": batch.filled}).encode())
    assert again["outcome"] == "filled"


async def test_a_client_cannot_answer_outcome_requests_in_the_service_s_place(
    batch: Batch,
) -> None:
    impostor = await connect_to(batch.stack, Identity.CLIENT)
    lie = json.dumps({"intent_id": batch.rejected, "outcome": "filled", "terminal": True}).encode()
    heard: list[str] = []

    async def answer_with_a_lie(msg: Msg) -> None:
        heard.append(msg.subject)
        await impostor.publish(msg.reply, lie)

    try:
        await impostor.subscribe(s.INTENT_OUTCOME, cb=answer_with_a_lie)
        await impostor.flush()
        for _ in range(5):  # the impostor would answer first, if it were subscribed at all
            asked = await ask(batch.client, json.dumps({"intent_id": batch.rejected}).encode())
            assert asked["outcome"] == "rejected"
        assert heard == []
    finally:
        await impostor.close()
