"""Ids the ingestor assigns: no client can compute them, and a redelivery keeps them.

Real nats-server; the ingestor alone. The attacker is another client on the same `client`
identity: it reads stream sequences from its publish acks and tries every id it could compute
from them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from nats.aio.client import Client as NATS

from agents.ingestor.agent import Ingestor
from agents.settings import Settings
from bus import provision
from bus.replay import read_stream
from bus.signing import Verifier
from contracts import DeadLetter, Identity, IntentAccepted
from contracts import subjects as s
from contracts import topology as t
from contracts.base import EVENT_NAMESPACE, submission_ref
from ops.audit.trail import find_trail
from tests.support.agents import ConnectAs, run_agent, stop_agent
from tests.support.pipeline import count_subject, eventually

SUBJECT = "intent.submitted.BTC-USD"
VICTIMS = 5


def intent(intent_id: str | uuid.UUID | None = None, account: str = "paper-1") -> bytes:
    body = {"account": account, "symbol": "BTC-USD", "side": "buy", "quantity": "0.01"}
    return json.dumps(body | ({"intent_id": str(intent_id)} if intent_id else {})).encode()


def guesses(seq: int) -> list[uuid.UUID]:
    """Every id of SUBMISSIONS #`seq` a client could compute from public data."""
    name = f"{t.SUBMISSIONS}:{seq}"
    return [
        uuid.uuid5(EVENT_NAMESPACE, name),  # the formula the ingestor used to assign ids by
        uuid.uuid3(EVENT_NAMESPACE, name),
        uuid.uuid5(EVENT_NAMESPACE, str(seq)),
        uuid.UUID(int=seq),
        submission_ref(seq),  # the submission's public name
    ]


async def accepted(ops_nc: NATS) -> list[IntentAccepted]:
    return [
        IntentAccepted.model_validate_json(m.data)
        async for m in read_stream(ops_nc, t.INTENTS, subject="intent.accepted.>")
    ]


async def dead_letters(ops_nc: NATS) -> list[tuple[str, DeadLetter]]:
    return [
        (m.subject, DeadLetter.model_validate_json(m.data))
        async for m in read_stream(ops_nc, t.DLQ, subject=s.dead_letters(Identity.INGESTOR))
    ]


def drained(ops_nc: NATS) -> Callable[[], Awaitable[bool]]:
    """Every submission stored so far was settled by the ingestor."""

    async def check() -> bool:
        info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
        return info.num_pending == 0 and info.num_ack_pending == 0

    return check


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Ingestor]:
    """An ingestor for the block, stopped even when the block fails."""
    agent = Ingestor(settings)
    task = await run_agent(agent)
    try:
        yield agent
    finally:
        await stop_agent(agent, task)


async def test_a_client_cannot_preclaim_the_ids_of_another_clients_idless_intents(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    attacker = (await connect_as(Identity.CLIENT)).jetstream()
    victim = (await connect_as(Identity.CLIENT)).jetstream()
    async with running(agent_settings):
        # The attacker learns where the stream is, and claims every id it can compute for the
        # sequences the victim's next intents will get (after its own claims).
        probe = await attacker.publish(SUBJECT, intent(uuid.uuid4()))
        claims = len(guesses(0)) * VICTIMS
        aimed = range(probe.seq + claims + 1, probe.seq + claims + 1 + VICTIMS)
        claimed = {g for seq in aimed for g in guesses(seq)}
        for guess in claimed:
            await attacker.publish(SUBJECT, intent(guess))
        await eventually(drained(ops_nc))

        acks = [await victim.publish(SUBJECT, intent()) for _ in range(VICTIMS)]
        await eventually(drained(ops_nc))

    assert [a.seq for a in acks] == list(aimed)  # the attack was aimed right
    mine = {a.submission_seq: a.intent_id for a in await accepted(ops_nc)}
    assert all(a.seq in mine for a in acks), "every victim intent accepted"
    assert not {mine[a.seq] for a in acks} & claimed
    letters = [letter for _, letter in await dead_letters(ops_nc)]
    assert {d.reason for d in letters} == {"reserved_intent_id"}  # only the public names
    assert all(d.stream_seq not in aimed for d in letters)


async def test_an_idless_submission_gets_an_id_of_its_own_that_names_no_stream_position(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    js = (await connect_as(Identity.CLIENT)).jetstream()
    async with running(agent_settings):
        acks = [await js.publish(SUBJECT, intent()) for _ in range(2)]
        await eventually(drained(ops_nc))

    by_seq = {a.submission_seq: a.intent_id for a in await accepted(ops_nc)}
    ids = [by_seq[a.seq] for a in acks]
    assert len(set(ids)) == 2
    for ack, iid in zip(acks, ids, strict=True):
        assert iid not in guesses(ack.seq)
        assert iid.version == 8 and iid.variant == uuid.RFC_4122


async def test_a_redelivered_idless_submission_keeps_its_id_after_a_restart(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    js = (await connect_as(Identity.CLIENT)).jetstream()
    async with running(agent_settings):
        ack = await js.publish(SUBJECT, intent())
        await eventually(drained(ops_nc))
    [before] = await accepted(ops_nc)

    # Every submission is delivered again, to a new ingestor process, as after a crash before
    # the acks: the consumer starts over.
    await ops_nc.jetstream().delete_consumer(t.SUBMISSIONS, "ingestor")
    await provision(ops_nc.jetstream())
    async with running(agent_settings) as second:
        await eventually(drained(ops_nc))

    assert second.stats.processed >= 1
    [after] = await accepted(ops_nc)  # re-emitted, de-duplicated by its event id
    assert (after.intent_id, after.submission_seq) == (before.intent_id, ack.seq)
    assert await count_subject(ops_nc, t.DLQ, "dlq.>") == 0


async def test_an_intent_id_naming_a_submission_is_refused_and_filed_under_its_own_name(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    js = (await connect_as(Identity.CLIENT)).jetstream()
    async with running(agent_settings):
        ack = await js.publish(SUBJECT, intent(submission_ref(1_000)))
        await eventually(drained(ops_nc))

    [(subject, letter)] = await dead_letters(ops_nc)
    assert letter.reason == "reserved_intent_id" and letter.intent_id is None
    assert subject == s.dead_letter(Identity.INGESTOR, submission_ref(ack.seq))
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.>") == 0


async def test_the_trail_of_an_idless_submission_joins_it_by_its_sequence(
    ops_nc: NATS, connect_as: ConnectAs, agent_settings: Settings
) -> None:
    js = (await connect_as(Identity.CLIENT)).jetstream()
    verifier = Verifier.from_dir(agent_settings.certs_dir)
    async with running(agent_settings):
        good = await js.publish(SUBJECT, intent())
        bad = await js.publish(SUBJECT, intent(account="nobody"))
        await eventually(drained(ops_nc))

    [acceptance] = await accepted(ops_nc)
    trail = await find_trail(ops_nc, acceptance.intent_id, verifier)
    assert [e.kind for e in trail.entries] == ["intent.submitted", "intent.accepted"]
    assert trail.entries[0].fact.seq == good.seq
    assert trail.outcome == "pending" and trail.problems == []

    refused = await find_trail(ops_nc, submission_ref(bad.seq), verifier)
    assert [e.kind for e in refused.entries] == ["intent.submitted", "dead_letter"]
    assert refused.entries[0].fact.seq == bad.seq
    assert refused.outcome == "dead_lettered" and refused.reasons == ["unknown_account"]
