"""The ingestor on a real nats-server: validation, de-duplication, enrichment, the feed."""

from __future__ import annotations

import json
import uuid

import pytest
from nats.aio.client import Client as NATS

from agents.ingestor.agent import Ingestor
from agents.settings import Settings
from contracts import DeadLetter, Identity, IntentAccepted, MarketTick
from contracts import topology as t
from tests.support.agents import ConnectAs, run_agent, stop_agent
from tests.support.deadletters import refers_to
from tests.support.pipeline import count_subject, eventually, read_subject

pytestmark = pytest.mark.integration


def submission(intent_id: str | None = None, **fields: object) -> bytes:
    body: dict[str, object] = {
        "account": "paper-1",
        "symbol": "BTC-USD",
        "side": "buy",
        "quantity": "1",
    }
    if intent_id:
        body["intent_id"] = intent_id
    body.update(fields)
    return json.dumps(body).encode()


async def test_accepted_intent_carries_the_latest_tick_price(
    ops_nc, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    # Arrange: the ingestor's own feed publishes ticks.
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)
    await eventually(lambda: _count(ops_nc, t.MARKET, "market.tick.BTC-USD", 1))
    client = await connect_as(Identity.CLIENT)

    # Act
    iid = str(uuid.uuid4())
    await client.jetstream().publish("intent.submitted.BTC-USD", submission(iid))
    await eventually(lambda: _count(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*", 1))
    await stop_agent(agent, task)

    # Assert
    [msg] = await read_subject(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*")
    accepted = IntentAccepted.model_validate_json(msg.data)
    assert str(accepted.intent_id) == iid
    ticks = [
        MarketTick.model_validate_json(m.data)
        for m in await read_subject(ops_nc, t.MARKET, "market.tick.BTC-USD")
    ]
    assert accepted.reference_price in {tick.price for tick in ticks}
    assert accepted.reference_price_ts is not None


async def _count(ops_nc, stream: str, subject: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count_subject(ops_nc, stream, subject) >= n


async def test_same_intent_id_twice_is_one_intent_even_beyond_the_duplicate_window(
    ops_nc, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    # Arrange: two publishes of the same intent id, with distinct Nats-Msg-Ids so the
    # stream's own duplicate window cannot help: only the ingestor's KV claim can.
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)
    client = await connect_as(Identity.CLIENT)
    iid = str(uuid.uuid4())

    # Act
    await client.jetstream().publish("intent.submitted.BTC-USD", submission(iid))
    await client.jetstream().publish("intent.submitted.BTC-USD", submission(iid))
    await client.jetstream().publish("intent.submitted.BTC-USD", submission(str(uuid.uuid4())))
    await eventually(lambda: _count(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*", 2))

    async def drained() -> bool:
        info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(drained)
    await stop_agent(agent, task)

    # Assert: two distinct intents accepted, the repeat silently absorbed.
    accepted = [
        IntentAccepted.model_validate_json(m.data)
        for m in await read_subject(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*")
    ]
    assert len(accepted) == 2
    assert sum(1 for a in accepted if str(a.intent_id) == iid) == 1
    assert await count_subject(ops_nc, t.DLQ, "dlq.ingestor.*") == 0


@pytest.mark.parametrize(
    ("subject", "payload", "reason"),
    [
        ("intent.submitted.BTC-USD", b"{not json", "invalid_payload"),
        ("intent.submitted.AAPL", submission(), "subject_mismatch"),
        ("intent.submitted.DOGE-USD", submission(symbol="DOGE-USD"), "unknown_symbol"),
        ("intent.submitted.BTC-USD", submission(account="nobody"), "unknown_account"),
        ("intent.submitted.BTC-USD", b"x" * 9000, "invalid_payload"),
    ],
)
async def test_bad_submission_is_dead_lettered_with_its_reason_and_exact_bytes(
    ops_nc,
    connect_as: ConnectAs,
    agent_settings: Settings,
    subject: str,
    payload: bytes,
    reason: str,
) -> None:
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)
    client = await connect_as(Identity.CLIENT)

    ack = await client.jetstream().publish(subject, payload)
    await eventually(lambda: _count(ops_nc, t.DLQ, "dlq.ingestor.*", 1))
    await stop_agent(agent, task)

    [msg] = await read_subject(ops_nc, t.DLQ, "dlq.ingestor.*")
    letter = DeadLetter.model_validate_json(msg.data)
    assert letter.reason == reason
    assert refers_to(letter, payload)
    assert (letter.stream, letter.stream_seq) == (t.SUBMISSIONS, ack.seq)
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.>") == 0


async def test_same_intent_id_with_different_content_is_dead_lettered_as_conflict(
    ops_nc, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)
    client = await connect_as(Identity.CLIENT)
    iid = str(uuid.uuid4())

    await client.jetstream().publish("intent.submitted.BTC-USD", submission(iid))
    await eventually(lambda: _count(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*", 1))
    await client.jetstream().publish("intent.submitted.BTC-USD", submission(iid, quantity="2"))
    await eventually(lambda: _count(ops_nc, t.DLQ, "dlq.ingestor.*", 1))
    await stop_agent(agent, task)

    [msg] = await read_subject(ops_nc, t.DLQ, "dlq.ingestor.*")
    letter = DeadLetter.model_validate_json(msg.data)
    assert letter.reason == "intent_id_conflict" and str(letter.intent_id) == iid
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*") == 1


async def test_submission_without_intent_id_is_accepted_under_a_new_id_naming_its_position(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    # Arrange
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)
    client = await connect_as(Identity.CLIENT)

    # Act
    ack = await client.jetstream().publish("intent.submitted.BTC-USD", submission())
    await eventually(lambda: _count(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*", 1))
    await stop_agent(agent, task)

    # Assert: a fresh id, and the acceptance names the submission's place in SUBMISSIONS (the
    # audit joins the two by it); the id itself is not computable from that place
    # (tests/integration/ingestor/test_assigned_ids.py)
    [msg] = await read_subject(ops_nc, t.INTENTS, "intent.accepted.BTC-USD.*")
    accepted = IntentAccepted.model_validate_json(msg.data)
    assert ack.stream == t.SUBMISSIONS
    assert accepted.submission_seq == ack.seq
    assert msg.subject == f"intent.accepted.BTC-USD.{accepted.intent_id}"
