"""Least privilege against a real nats-server: no identity can do more than its job.

Denials are proven by what the server did (nothing stored, nothing acked, nothing changed) and by
the `tradeops_permission_violations_total` counter fed by the connection's error callback.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api

from agents.ingestor.agent import Ingestor
from agents.settings import Settings
from bus import Signer
from bus.headers import MSG_ID, PIN_ID
from bus.identity import CertPaths
from bus.replay import read_stream
from contracts import Identity, IntentAccepted, derive_event_id
from contracts import subjects as s
from contracts import topology as t
from contracts.types import AGENTS
from tests.support.agents import ConnectAs, run_agent, stop_agent
from tests.support.permissions import (
    ANSWER_GRACE_S,
    DENIED_TIMEOUT_S,
    REQUEST_DENIED,
    WORK,
    event,
    pinned_client,
    pull_pinned,
    pull_request,
    stored,
    subscribed,
    topology_names,
    until,
    violations,
)
from tests.support.pipeline import eventually, intent_payload, read_subject

pytestmark = pytest.mark.integration


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
