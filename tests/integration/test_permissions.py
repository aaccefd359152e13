"""Least privilege against a real nats-server: every identity can do its own job and no more.

Denials are proven by what the server did (nothing stored, nothing acked, nothing changed) and by
the `tradeops_permission_violations_total` counter fed by the connection's error callback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import api as js_api
from prometheus_client import REGISTRY

from agents.ingestor.agent import Ingestor
from agents.settings import Settings
from bus import Credentials, Signer, connect
from bus.headers import MSG_ID
from bus.identity import CertPaths
from bus.pull import PIN_ID, PullConsumer
from bus.replay import read_stream
from contracts import Identity, IntentAccepted, derive_event_id
from contracts import subjects as s
from contracts import topology as t
from contracts.types import AGENTS
from ops.pki.certs import init_certs, issue
from ops.stack.natsd import NatsServer
from tests.conftest import ConnectAs, run_agent, stop_agent
from tests.support.pipeline import eventually, intent_payload, read_subject

pytestmark = pytest.mark.integration

DENIED_TIMEOUT_S = 0.5
"""How long a request-style call waits before a denial surfaces as a timeout."""

ANSWER_GRACE_S = 0.3
"""How long to let a server's answer land before checking that it did not reach a stream."""

# What a request-style call raises when the server drops it for lack of permission.
REQUEST_DENIED = (nats.errors.TimeoutError, nats.errors.NoRespondersError)

# What a client sees when the server refuses its certificate in the TLS handshake: an SSL alert,
# a reset or an EOF, depending on timing (the server log says why, and the tests check it).
TLS_REFUSED = (ssl.SSLError, OSError, nats.errors.Error)

IID = uuid.UUID("5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21")
"""The intent every agent event of these tests is about (its subject's last token)."""


def event(prefix: str, token: str = "AAPL") -> str:
    """Return the subject of an agent's event about `IID`: `<prefix>.<token>.<IID>`."""
    return s.intent_event(prefix, token, IID)


# Each agent's first work consumer: what feeds it and what the agent publishes after handling.
WORK = {
    Identity.INGESTOR: (
        t.SUBMISSIONS,
        "ingestor",
        "intent.submitted.AAPL",
        event(s.INTENT_ACCEPTED),
    ),
    Identity.ANALYST: (t.INTENTS, "analyst", event(s.INTENT_ACCEPTED), event(s.INTENT_ANALYZED)),
    Identity.RISK: (t.INTENTS, "risk", event(s.INTENT_ANALYZED), event(s.RISK_APPROVED)),
    Identity.EXECUTOR: (t.RISK, "executor", event(s.RISK_APPROVED), event(s.ORDER_FILLED)),
    Identity.LEDGER: (t.ORDERS, "ledger", event(s.ORDER_FILLED), event(s.LEDGER_POSTED, "ACC1")),
}


def violations(identity: Identity | str) -> float:
    """Return the permission violations counted so far for `identity` (process-wide counter)."""
    value = REGISTRY.get_sample_value(
        "tradeops_permission_violations_total", {"identity": str(identity)}
    )
    return value or 0.0


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; return whether it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def subscribed(nc: NATS, subject: str) -> Subscription:
    """Subscribe and wait until the server has the subscription.

    nats-py writes the PING of `flush()` straight to the socket, possibly ahead of the SUB still
    in its pending buffer, so one flush may return before the server has the subscription. By
    the second, the flusher task has written the SUB.
    """
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.flush()
    return sub


async def stored(js: JetStreamContext, stream: str) -> int:
    """Return how many messages `stream` holds (asked as ops)."""
    info = await js.stream_info(stream)
    return int(info.state.messages)


async def topology_names(js: JetStreamContext) -> tuple[set[str], set[tuple[str, str]]]:
    """Return the stream names and the intent streams' (stream, consumer) names (asked as ops)."""
    streams = {str(i.config.name) for i in await js.streams_info()}
    consumers = set()
    for stream in (t.SUBMISSIONS, t.INTENTS):
        consumers |= {(stream, str(c.name)) for c in await js.consumers_info(stream)}
    return streams, consumers


def pull_request(durable: str, batch: int = 1) -> bytes:
    """Return a pull request for `durable` as its owner's runtime sends it (with its group)."""
    request: dict[str, object] = {"batch": batch, "expires": int(DENIED_TIMEOUT_S * 1e9)}
    group = t.consumer(durable).pinned_group
    if group is not None:
        request["group"] = group
    return json.dumps(request).encode()


async def pull_pinned(nc: NATS, durable: str, timeout_s: float = 2.0) -> list[Msg]:
    """Bind `durable` and pull from it as the agents' runtime does (taking over its pin)."""
    spec = t.consumer(durable)
    pull = PullConsumer(nc, spec.stream, spec.durable, batch=1, group=spec.pinned_group)
    await pull.bind()
    try:
        return await pull.next_batch(timeout_s)
    finally:
        await pull.unbind()


async def pinned_client(ops_nc: NATS, durable: str) -> str | None:
    """Return the pin id the server holds for `durable`'s priority group (asked as ops).

    nats-py's ConsumerInfo drops the priority groups' state, so this reads the API's answer.
    """
    spec = t.consumer(durable)
    subject = f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}"
    info = await ops_nc.request(subject, b"", timeout=2)
    groups = json.loads(info.data).get("priority_groups") or []
    return next((g.get("pinned_client_id") for g in groups if g.get("pinned_client_id")), None)


def server_log(server: NatsServer) -> str:
    """Return what the test's nats-server has logged so far."""
    return server.log_path.read_text()


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Return a client TLS context trusting `ca`, presenting `cert` when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def connect_once(url: str, ctx: ssl.SSLContext, errors: list[Exception]) -> NATS:
    """Connect with `ctx`, no reconnect, collecting what the error callback reports."""

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(
        servers=[url],
        tls=ctx,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=2,
        error_cb=error_cb,
    )


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


# --- and nothing else -------------------------------------------------------------------------


async def test_analyst_publishing_risk_approved_is_denied_and_nothing_is_stored(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    analyst = await connect_as(Identity.ANALYST)
    before = violations(Identity.ANALYST)

    # Act / Assert: the publish (in the risk gate's full subject shape) is dropped, so no PubAck
    with pytest.raises(REQUEST_DENIED):
        await analyst.jetstream(timeout=DENIED_TIMEOUT_S).publish(
            event(s.RISK_APPROVED, "X"), b"approve"
        )

    # Assert
    assert await stored(ops_nc.jetstream(), t.RISK) == 0
    assert await until(lambda: violations(Identity.ANALYST) == before + 1)


async def test_client_publishing_control_kill_is_denied_and_nothing_is_stored(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    client = await connect_as(Identity.CLIENT)
    before = violations(Identity.CLIENT)

    # Act / Assert
    with pytest.raises(REQUEST_DENIED):
        await client.jetstream(timeout=DENIED_TIMEOUT_S).publish(s.CONTROL_KILL, b"kill")

    # Assert
    assert await stored(ops_nc.jetstream(), t.CONTROL) == 0
    assert await until(lambda: violations(Identity.CLIENT) == before + 1)


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("subject", s.CONTROL_SUBJECTS)
async def test_agent_writing_trading_state_is_denied_and_control_stream_stays_empty(
    agent: Identity, subject: str, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    nc = await connect_as(agent)
    before = violations(agent)

    # Act: a core publish and a JetStream publish
    await nc.publish(subject, b"state")
    await nc.flush()
    with pytest.raises(REQUEST_DENIED):
        await nc.jetstream(timeout=DENIED_TIMEOUT_S).publish(subject, b"state")

    # Assert
    assert await stored(ops_nc.jetstream(), t.CONTROL) == 0
    assert await until(lambda: violations(agent) == before + 2)


async def test_analyst_fetching_from_ingestor_consumer_times_out_and_message_stays_pending(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    await ops_nc.jetstream().publish("intent.submitted.AAPL", b"submit")
    analyst = await connect_as(Identity.ANALYST)
    before = violations(Identity.ANALYST)
    inbox = await subscribed(analyst, analyst.new_inbox())

    # Act: a pull request as the owner's runtime sends it, group included
    await analyst.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{t.SUBMISSIONS}.ingestor",
        pull_request("ingestor"),
        reply=inbox.subject,
    )
    await analyst.flush()

    # Assert: nothing was delivered; the owner still gets the message
    with pytest.raises(nats.errors.TimeoutError):
        await inbox.next_msg(timeout=DENIED_TIMEOUT_S)
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert (info.num_pending, info.num_ack_pending, info.delivered.stream_seq) == (1, 0, 0)
    assert await until(lambda: violations(Identity.ANALYST) > before)
    ingestor = await connect_as(Identity.INGESTOR)
    [msg] = await pull_pinned(ingestor, "ingestor")
    assert msg.data == b"submit"


async def test_analyst_acking_on_ingestor_consumer_is_denied_and_message_stays_ack_pending(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: the ingestor holds a message without acking it
    ops_js = ops_nc.jetstream()
    await ops_js.publish("intent.submitted.AAPL", b"submit")
    ingestor = await connect_as(Identity.INGESTOR)
    [msg] = await pull_pinned(ingestor, "ingestor")
    analyst = await connect_as(Identity.ANALYST)
    before = violations(Identity.ANALYST)

    # Act: the analyst acks (and terminates) it on the ingestor's ack subject
    await analyst.publish(msg.reply, b"+ACK")
    await analyst.publish(msg.reply, b"+TERM")
    await analyst.flush()

    # Assert
    assert await until(lambda: violations(Identity.ANALYST) == before + 2)
    info = await ops_js.consumer_info(t.SUBMISSIONS, "ingestor")
    assert (info.num_ack_pending, info.ack_floor.stream_seq) == (1, 0)
    # ... while the owner's ack on the same subject does settle it
    await msg.ack_sync()
    info = await ops_js.consumer_info(t.SUBMISSIONS, "ingestor")
    assert (info.num_ack_pending, info.ack_floor.stream_seq) == (0, 1)


async def test_ingestor_unpins_its_own_consumer_and_analyst_unpinning_it_is_denied(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: an ingestor holds the pin of its consumer's group (a pull of exactly one message)
    ops_js = ops_nc.jetstream()
    for payload in (b"first", b"second"):
        await ops_js.publish("intent.submitted.AAPL", payload)
    first_ingestor = await connect_as(Identity.INGESTOR)
    inbox = await subscribed(first_ingestor, first_ingestor.new_inbox())
    await first_ingestor.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{t.SUBMISSIONS}.ingestor",
        pull_request("ingestor"),
        reply=inbox.subject,
    )
    first = await inbox.next_msg(timeout=2)
    await first.ack_sync()
    assert first.headers is not None
    old_pin = first.headers[PIN_ID]
    assert await pinned_client(ops_nc, "ingestor") == old_pin
    unpin = f"$JS.API.CONSUMER.UNPIN.{t.SUBMISSIONS}.ingestor"
    group = json.dumps({"group": t.consumer("ingestor").pinned_group}).encode()
    analyst = await connect_as(Identity.ANALYST)
    before = violations(Identity.ANALYST)

    # Act / Assert: the analyst's unpin is dropped; the pin stays where it was
    with pytest.raises(REQUEST_DENIED):
        await analyst.request(unpin, group, timeout=DENIED_TIMEOUT_S)
    assert await until(lambda: violations(Identity.ANALYST) == before + 1)
    assert await pinned_client(ops_nc, "ingestor") == old_pin

    # Act: a restarted ingestor (a new connection) unpins, then pulls
    restarted = await connect_as(Identity.INGESTOR)
    reply = await restarted.request(unpin, group, timeout=2)
    assert json.loads(reply.data).get("error") is None
    assert await pinned_client(ops_nc, "ingestor") is None
    [second] = await pull_pinned(restarted, "ingestor")

    # Assert: the restarted ingestor got the next message under a pin of its own
    assert second.data == b"second"
    assert second.headers is not None and second.headers[PIN_ID] != old_pin
    assert await pinned_client(ops_nc, "ingestor") == second.headers[PIN_ID]


async def test_ingestor_reading_intents_by_direct_get_is_denied(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: INTENTS holds agents' events only; the ingestor reads SUBMISSIONS and MARKET
    await ops_nc.jetstream().publish(event(s.INTENT_ACCEPTED), b"accepted")
    ingestor = await connect_as(Identity.INGESTOR)
    before = violations(Identity.INGESTOR)

    # Act / Assert: the direct get is dropped, so no answer comes back (the reader waits for its
    # batch with asyncio's timeout, of which nats' own TimeoutError is a subclass)
    with pytest.raises(TimeoutError):
        [m async for m in read_stream(ingestor, t.INTENTS, timeout_s=DENIED_TIMEOUT_S)]

    # Assert
    assert await until(lambda: violations(Identity.INGESTOR) > before)


async def test_client_msg_id_equal_to_a_derived_event_id_does_not_suppress_the_agents_event(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    # Arrange: event ids are derivable, so a client can publish a submission whose Nats-Msg-Id
    # is the id the ingestor's intent.accepted of a later intent will carry
    intent_id = uuid.uuid4()
    event_id = str(derive_event_id(intent_id, IntentAccepted.kind))
    client = await connect_as(Identity.CLIENT)
    js = client.jetstream()
    squat = await js.publish("intent.submitted.AAPL", b"squat", headers={MSG_ID: event_id})
    agent = Ingestor(agent_settings)
    task = await run_agent(agent)

    # Act: the client submits that intent; the ingestor handles both submissions
    await js.publish("intent.submitted.AAPL", intent_payload(intent_id=str(intent_id)))

    async def drained() -> bool:
        info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
        done = (info.delivered.stream_seq, info.num_ack_pending, info.num_pending) == (2, 0, 0)
        return done

    try:
        await eventually(drained)
    finally:
        await stop_agent(agent, task)

    # Assert: the intent.accepted, with that very id, is stored in INTENTS
    assert (squat.stream, squat.duplicate) == (t.SUBMISSIONS, None)
    [msg] = await read_subject(ops_nc, t.INTENTS, "intent.accepted.AAPL.*")
    accepted = IntentAccepted.model_validate_json(msg.data)
    assert (accepted.intent_id, str(accepted.event_id)) == (intent_id, event_id)
    assert msg.headers is not None and msg.headers[MSG_ID] == event_id


async def test_client_cannot_make_the_server_write_its_puback_into_control(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: the server answers a publish on its reply subject, which the client chooses
    client = await connect_as(Identity.CLIENT)
    ops_js = ops_nc.jetstream()

    # Act
    await client.publish("intent.submitted.AAPL", b"submit", reply=s.CONTROL_KILL)
    await client.flush()

    # Assert: the intent is stored, its PubAck is not
    await asyncio.sleep(ANSWER_GRACE_S)
    assert await stored(ops_js, t.SUBMISSIONS) == 1
    assert await stored(ops_js, t.CONTROL) == 0


@pytest.mark.parametrize("agent", AGENTS)
async def test_agent_cannot_replay_an_old_control_message_into_control_by_direct_get(
    agent: Identity, ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    # Arrange: resumed, then killed. A replayed resume keeps its headers, so its ops signature
    # would still verify, and it would be the newest control message.
    ops_js = ops_nc.jetstream()
    signer = Signer.from_file(Identity.OPS, CertPaths(certs_dir).signing_key(Identity.OPS))
    signed = signer.headers(s.CONTROL_RESUME, b"resume")
    await ops_js.publish(s.CONTROL_RESUME, b"resume", headers=signed)
    await ops_js.publish(s.CONTROL_KILL, b"kill")
    nc = await connect_as(agent)

    # Act: a direct get of the old resume, answered on `control.resume`
    await nc.publish(
        f"$JS.API.DIRECT.GET.{t.CONTROL}.{s.CONTROL_RESUME}", b"", reply=s.CONTROL_RESUME
    )
    await nc.flush()

    # Assert
    await asyncio.sleep(ANSWER_GRACE_S)
    assert await stored(ops_js, t.CONTROL) == 2
    latest = await ops_js.get_msg(t.CONTROL, subject=s.CONTROL_RESUME)
    assert latest.seq == 1


@pytest.mark.parametrize("agent", AGENTS)
async def test_agent_cannot_redirect_its_own_outputs_puback_or_deliveries_into_control(
    agent: Identity, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    stream, durable, feed, output = WORK[agent]
    ops_js = ops_nc.jetstream()
    await ops_js.publish(feed, b"input")
    nc = await connect_as(agent)

    # Act: its own output and its own pull request, each answered on `control.kill`
    await nc.publish(output, b"output", reply=s.CONTROL_KILL)
    await nc.publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", pull_request(durable), reply=s.CONTROL_KILL
    )
    await nc.flush()

    # Assert
    await asyncio.sleep(ANSWER_GRACE_S)
    assert await stored(ops_js, t.CONTROL) == 0


async def test_agent_cannot_make_the_server_send_a_control_message_to_other_agents(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange: ops killed; the executor follows the control subjects live
    ops_js = ops_nc.jetstream()
    await ops_js.publish(s.CONTROL_KILL, b"kill")
    executor = await connect_as(Identity.EXECUTOR)
    follower = await subscribed(executor, s.CONTROL_ALL)
    analyst = await connect_as(Identity.ANALYST)

    # Act: the analyst has the stored kill and a PubAck answered on the control subjects
    await analyst.publish(
        f"$JS.API.DIRECT.GET.{t.CONTROL}.{s.CONTROL_KILL}", b"", reply=s.CONTROL_KILL
    )
    await analyst.publish(event(s.INTENT_ANALYZED), b"analyzed", reply=s.CONTROL_RESUME)
    await analyst.flush()
    await asyncio.sleep(ANSWER_GRACE_S)
    await ops_js.publish(s.CONTROL_RESUME, b"resume")

    # Assert: all the executor hears is ops' own resume
    msg = await follower.next_msg(timeout=2)
    assert (msg.subject, msg.data) == (s.CONTROL_RESUME, b"resume")
    with pytest.raises(nats.errors.TimeoutError):
        await follower.next_msg(timeout=ANSWER_GRACE_S)
    assert await stored(ops_js, t.CONTROL) == 2


STREAM_AND_CONSUMER_CHANGES: dict[str, Callable[[JetStreamContext], Awaitable[object]]] = {
    "add_stream": lambda js: js.add_stream(name="ROGUE", subjects=["rogue.>"]),
    "delete_stream": lambda js: js.delete_stream(t.SUBMISSIONS),
    "purge_stream": lambda js: js.purge_stream(t.SUBMISSIONS),
    "update_stream": lambda js: js.update_stream(
        js_api.StreamConfig(name=t.CONTROL, subjects=["control.>", "rogue.>"])
    ),
    "add_consumer": lambda js: js.add_consumer(
        t.SUBMISSIONS,
        js_api.ConsumerConfig(durable_name="rogue", ack_policy=js_api.AckPolicy.NONE),
    ),
    "delete_consumer": lambda js: js.delete_consumer(t.SUBMISSIONS, "ingestor"),
}


@pytest.mark.parametrize("identity", [Identity.CLIENT, *AGENTS])
@pytest.mark.parametrize("change", list(STREAM_AND_CONSUMER_CHANGES))
async def test_non_ops_changing_streams_or_consumers_is_denied_and_topology_is_unchanged(
    identity: Identity, change: str, ops_nc: NATS, connect_as: ConnectAs
) -> None:
    # Arrange
    ops_js = ops_nc.jetstream()
    await ops_js.publish("intent.submitted.AAPL", b"submit")
    topology_before = await topology_names(ops_js)
    control_subjects_before = (await ops_js.stream_info(t.CONTROL)).config.subjects
    nc = await connect_as(identity)
    before = violations(identity)

    # Act / Assert
    with pytest.raises(REQUEST_DENIED):
        await STREAM_AND_CONSUMER_CHANGES[change](nc.jetstream(timeout=DENIED_TIMEOUT_S))

    # Assert
    assert await topology_names(ops_js) == topology_before
    assert await stored(ops_js, t.SUBMISSIONS) == 1
    assert (await ops_js.stream_info(t.CONTROL)).config.subjects == control_subjects_before
    assert await until(lambda: violations(identity) > before)


# --- who may connect at all -------------------------------------------------------------------


async def test_connecting_with_own_certificate_succeeds(
    nats_server: NatsServer, certs_dir: Path
) -> None:
    # Arrange: the control case for the refusals below, through the same helper
    paths = CertPaths(certs_dir)
    ctx = tls_context(paths.ca, paths.cert("analyst"), paths.key("analyst"))
    errors: list[Exception] = []

    # Act
    nc = await connect_once(nats_server.layout.url, ctx, errors)

    # Assert
    try:
        assert nc.is_connected
        assert errors == []
    finally:
        await nc.close()


async def test_connecting_without_client_certificate_is_refused(
    nats_server: NatsServer, certs_dir: Path
) -> None:
    # Arrange: trusts the server's CA but presents no certificate
    ctx = tls_context(CertPaths(certs_dir).ca)
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(TLS_REFUSED):
        await connect_once(nats_server.layout.url, ctx, errors)
    assert await until(lambda: "didn't provide a certificate" in server_log(nats_server), 5)


async def test_connecting_with_certificate_from_another_ca_is_refused(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: a certificate with the analyst's own subject, issued by a foreign CA
    foreign, _ = init_certs(tmp_path / "foreign")
    ctx = tls_context(CertPaths(certs_dir).ca, foreign.cert("analyst"), foreign.key("analyst"))
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(TLS_REFUSED):
        await connect_once(nats_server.layout.url, ctx, errors)
    assert await until(lambda: "signed by unknown authority" in server_log(nats_server), 5)


async def test_connecting_with_valid_certificate_of_unknown_identity_is_an_authorization_violation(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: "mallory" is issued by the real CA, into a copy (certs_dir is session-wide)
    copy = CertPaths(Path(shutil.copytree(certs_dir, tmp_path / "certs")))
    issue(copy, "mallory")
    ctx = tls_context(copy.ca, copy.cert("mallory"), copy.key("mallory"))
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(nats.errors.Error) as refused:
        await connect_once(nats_server.layout.url, ctx, errors)
    assert "authorization violation" in str(refused.value).lower()


async def test_bus_connect_as_unknown_identity_fails_fast(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange
    copy = Path(shutil.copytree(certs_dir, tmp_path / "certs"))
    issue(CertPaths(copy), "mallory")
    credentials = Credentials("mallory", copy)  # type: ignore[arg-type]

    # Act / Assert
    with pytest.raises(nats.errors.Error) as refused:
        async with asyncio.timeout(5):
            await connect(
                nats_server.layout.url,
                credentials,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout_s=2,
            )
    assert "authorization violation" in str(refused.value).lower()
