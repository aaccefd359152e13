"""Least privilege against a real nats-server: every identity can do its own job.

Each agent publishes, consumes, acks, reads its streams and KV buckets, and receives control as
its work needs, with the real topology, mutual TLS and the generated permissions.
"""

from __future__ import annotations

import nats.errors
import pytest
from nats.aio.client import Client as NATS

from bus.headers import PIN_ID
from bus.replay import read_stream
from contracts import Identity
from contracts import subjects as s
from contracts import topology as t
from contracts.types import AGENTS
from tests.support.agents import ConnectAs
from tests.support.permissions import (
    IID,
    WORK,
    event,
    pull_pinned,
    stored,
    subscribed,
)

pytestmark = pytest.mark.integration


# --- each identity can do its own job ---------------------------------------------------------


async def test_client_publishes_intent_submitted_and_gets_a_puback(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    client = await connect_as(Identity.CLIENT)

    # Act
    ack = await client.jetstream().publish("intent.submitted.AAPL", b"submit")

    # Assert: stored in the submissions' own stream, nothing in the agents' INTENTS
    assert (ack.stream, ack.seq) == (t.SUBMISSIONS, 1)
    raw = await ops_nc.jetstream().get_msg(t.SUBMISSIONS, subject="intent.submitted.AAPL")
    assert raw.data == b"submit"
    assert await stored(ops_nc.jetstream(), t.INTENTS) == 0


async def test_ingestor_fetches_and_acks_client_intent_then_publishes_intent_accepted(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    client = await connect_as(Identity.CLIENT)
    await client.jetstream().publish("intent.submitted.AAPL", b"submit")
    ingestor = await connect_as(Identity.INGESTOR)
    js = ingestor.jetstream()

    # Act: pull as the runtime does, in the consumer's pinned priority group
    [msg] = await pull_pinned(ingestor, "ingestor")
    await msg.ack_sync()
    ack = await js.publish(event(s.INTENT_ACCEPTED), b"accepted")

    # Assert
    assert msg.data == b"submit"
    assert msg.headers is not None and msg.headers[PIN_ID]
    assert (ack.stream, ack.seq) == (t.INTENTS, 1)
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert (info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq) == (0, 0, 1)


@pytest.mark.parametrize("agent", [a for a in AGENTS if a is not Identity.INGESTOR])
async def test_agent_consumes_own_consumer_and_publishes_its_output(
    agent: Identity, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    stream, durable, feed, output = WORK[agent]
    ops_js = ops_nc.jetstream()
    await ops_js.publish(feed, b"input")
    nc = await connect_as(agent)
    js = nc.jetstream()

    # Act
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    [msg] = await sub.fetch(1, timeout=2)
    await msg.ack_sync()
    ack = await js.publish(output, b"output")
    info = await js.consumer_info(stream, durable)

    # Assert
    assert msg.data == b"input"
    assert (info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq) == (0, 0, 1)
    raw = await ops_js.get_msg(ack.stream, subject=output)
    assert (raw.seq, raw.data) == (ack.seq, b"output")


@pytest.mark.parametrize("agent", AGENTS)
async def test_agent_publishes_its_own_dead_letter(
    agent: Identity, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    nc = await connect_as(agent)

    # Act
    ack = await nc.jetstream().publish(s.dead_letter(agent, IID), b"dead")

    # Assert
    assert ack.stream == t.DLQ
    raw = await ops_nc.jetstream().get_msg(t.DLQ, subject=s.dead_letter(agent, IID))
    assert raw.data == b"dead"


@pytest.mark.parametrize("kv", t.KV_BUCKETS, ids=lambda kv: kv.bucket)
async def test_kv_writer_puts_and_gets_its_bucket(
    kv: t.KvSpec, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    [writer] = kv.writers
    nc = await connect_as(writer)

    # Act
    bucket = await nc.jetstream().key_value(kv.bucket)
    revision = await bucket.put("key-1", b"value")
    entry = await bucket.get("key-1")

    # Assert
    assert (entry.revision, entry.value) == (revision, b"value")
    ops_bucket = await ops_nc.jetstream().key_value(kv.bucket)
    assert (await ops_bucket.get("key-1")).value == b"value"


@pytest.mark.parametrize("agent", AGENTS)
async def test_agent_reads_last_control_message_by_direct_get_after_ops_kill(
    agent: Identity, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    await ops_nc.jetstream().publish(s.CONTROL_KILL, b"kill")
    nc = await connect_as(agent)

    # Act
    raw = await nc.jetstream().get_msg(t.CONTROL, subject=s.CONTROL_KILL, direct=True)

    # Assert
    assert (raw.seq, raw.data) == (1, b"kill")


SAMPLE_SUBJECT = {
    t.SUBMISSIONS: "intent.submitted.AAPL",
    t.INTENTS: event(s.INTENT_ACCEPTED),
    t.MARKET: "market.tick.AAPL",
    t.ORDERS: event(s.ORDER_FILLED),
    t.RISK: event(s.RISK_APPROVED),
}


@pytest.mark.parametrize(
    ("agent", "stream"),
    [(agent, stream) for agent, streams in t.DIRECT_READS.items() for stream in streams]
    # ... and the stream of its own work consumer, which the exhausted-advisory path reads
    + [(Identity.INGESTOR, t.SUBMISSIONS)],
)
async def test_agent_reads_its_streams_by_batched_direct_get(
    agent: Identity, stream: str, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: more messages than one batch holds
    ops_js = ops_nc.jetstream()
    for n in range(5):
        await ops_js.publish(SAMPLE_SUBJECT[stream], f"m{n}".encode())
    nc = await connect_as(agent)

    # Act
    stored_msgs = [m async for m in read_stream(nc, stream, batch=2, timeout_s=2)]

    # Assert
    assert [(m.seq, m.data) for m in stored_msgs] == [(n + 1, f"m{n}".encode()) for n in range(5)]


async def test_agent_receives_ops_kill_on_its_control_subscription(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    nc = await connect_as(Identity.EXECUTOR)
    sub = await subscribed(nc, s.CONTROL_ALL)

    # Act
    ack = await ops_nc.jetstream().publish(s.CONTROL_KILL, b"kill")
    msg = await sub.next_msg(timeout=2)

    # Assert
    assert (ack.stream, msg.subject, msg.data) == (t.CONTROL, s.CONTROL_KILL, b"kill")


@pytest.mark.parametrize("spec", t.DEAD_LETTER_CONSUMERS, ids=lambda c: c.durable)
async def test_agent_consumes_own_exhausted_advisories(
    spec: t.ConsumerSpec, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: an advisory as the server would publish it, stored in ADVISORIES
    await ops_nc.jetstream().publish(spec.filter_subject, b'{"stream_seq": 7}')
    nc = await connect_as(spec.owner)

    # Act
    sub = await nc.jetstream().pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
    [msg] = await sub.fetch(1, timeout=2)
    await msg.ack_sync()

    # Assert
    assert msg.data == b'{"stream_seq": 7}'
    info = await ops_nc.jetstream().consumer_info(spec.stream, spec.durable)
    assert (info.num_ack_pending, info.ack_floor.stream_seq) == (0, 1)


async def test_ingestor_market_tick_reaches_each_follower_once_and_is_stored(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    followers = {i: await connect_as(i) for i in t.FOLLOWS}
    subs = {i: await subscribed(nc, s.every(s.MARKET_TICK)) for i, nc in followers.items()}

    # Act
    await followers[Identity.INGESTOR].publish("market.tick.AAPL", b"187.25")
    await ops_nc.publish("market.tick.MSFT", b"410.10")

    # Assert: each follower sees both ticks exactly once, and MARKET keeps both
    for sub in subs.values():
        got = {(m.subject, m.data) for m in [await sub.next_msg(timeout=2) for _ in range(2)]}
        assert got == {("market.tick.AAPL", b"187.25"), ("market.tick.MSFT", b"410.10")}
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.2)
    assert await stored(ops_nc.jetstream(), t.MARKET) == 2
