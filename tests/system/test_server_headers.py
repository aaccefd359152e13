"""A client sets the server's own header names on its submissions, in bursts with valid intents.

A client may set any header. Statuses are the server's only when the server alone can have sent
them (a pull status has no reply subject); a submission carrying a server header name is refused
at intake with the reason `reserved_header`. So the poison neither stalls the intake nor vanishes,
every valid intent of the burst fills, and `intent show`, `audit trail` and `audit verify` stay
right throughout.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from typer.testing import CliRunner, Result

from bus.replay import read_stream
from contracts import DeadLetter, Identity
from contracts import subjects as s
from contracts import topology as t
from ops.cli import app
from ops.stack.embedded import EmbeddedStack
from tests.support.pipeline import eventually
from tests.support.stack import connect_to, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

STATUSES = ("100", "404", "408", "409", "503", "junk")
SERVER_HEADERS = (
    "Nats-Pending-Messages", "Nats-Sequence", "Nats-Stream", "Nats-Subject", "Nats-Time-Stamp",
    "Nats-Last-Sequence",
)  # fmt: skip
VALID_VALUES = {
    "Nats-Pending-Messages": "3", "Nats-Sequence": "1", "Nats-Stream": "SUBMISSIONS",
    "Nats-Subject": "intent.submitted.BTC-USD", "Nats-Time-Stamp": "2026-01-01T00:00:00Z",
    "Nats-Last-Sequence": "0",
}  # fmt: skip


def order(intent_id: str) -> bytes:
    return json.dumps({"intent_id": intent_id, "account": "paper-1", "symbol": "BTC-USD",
                       "side": "buy", "quantity": "0.01"}).encode()  # fmt: skip


def poison_headers() -> list[dict[str, str]]:
    """Every server header name, with valid and junk values; statuses with and without a
    pending count."""
    out: list[dict[str, str]] = []
    for code in STATUSES:
        out.append({"Status": code})
        out.append({"Status": code, "Nats-Pending-Messages": "junk", "Description": "x"})
    for name in SERVER_HEADERS:
        out.append({name: VALID_VALUES[name]})
        out.append({name: "junk"})
    return out


async def cli(stack: EmbeddedStack, *args: str) -> Result:
    argv = [*args, "--data-dir", str(stack.settings.data_dir)]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def shown(stack: EmbeddedStack, intent_id: str) -> dict[str, Any]:
    result = await cli(stack, "intent", "show", intent_id, "--json")
    doc: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    return doc


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-test-"))
    try:
        async with running_stack(base / "stack") as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_poison_headers_in_a_burst_neither_stall_the_intake_nor_vanish(
    stack: EmbeddedStack,
) -> None:
    client = await connect_to(stack, Identity.CLIENT)
    ops = await connect_to(stack, Identity.OPS)
    js = client.jetstream()
    subject = s.of(s.INTENT_SUBMITTED, "BTC-USD")
    valid: list[str] = []
    poison: dict[str, dict[str, str]] = {}  # intent id (or a marker) -> headers
    empty = 0
    try:
        for i, headers in enumerate(poison_headers()):
            if i % 2:  # half the poison is empty, as a server status would be
                await js.publish(subject, b"", headers=headers)
                empty += 1
            else:
                iid = str(uuid.uuid4())
                await js.publish(subject, order(iid), headers=headers)
                poison[iid] = headers
            iid = str(uuid.uuid4())
            await js.publish(subject, order(iid))
            valid.append(iid)

        async def all_filled() -> bool:
            docs = [await shown(stack, iid) for iid in valid]
            return all(d.get("outcome") == "filled" for d in docs)

        await eventually(all_filled, timeout_s=60)  # the ack wait is 30 s: no stall past it

        letters: list[DeadLetter] = []

        async def all_dead_lettered() -> bool:
            letters.clear()
            async for msg in read_stream(ops, t.DLQ, subject=s.dead_letters(Identity.INGESTOR)):
                letters.append(DeadLetter.model_validate_json(msg.data))
            return len(letters) >= len(poison) + empty

        await eventually(all_dead_lettered, timeout_s=30)
    finally:
        await client.close()
        await ops.close()

    assert {letter.reason for letter in letters} == {"reserved_header"}
    assert len(letters) == len(poison) + empty
    named = {str(letter.intent_id) for letter in letters if letter.intent_id is not None}
    assert named == set(poison)
    for iid in list(poison)[:3]:
        doc = await shown(stack, iid)
        assert doc["outcome"] == "dead_lettered" and doc["reasons"] == ["reserved_header"]
        audited = json.loads((await cli(stack, "audit", "trail", iid, "--json")).stdout)
        assert audited["outcome"] == "dead_lettered"
    verify = await cli(stack, "audit", "verify")
    assert verify.exit_code == 0, verify.stdout + verify.stderr
