"""The ingestor's pinned pull consumer against a real nats-server (mutual TLS, real topology).

SUBMISSIONS is the one stream clients write, so its consumer is pinned (`ConsumerSpec.pinned_group`)
and every delivery carries a header: an empty, header-less submission must not end the pull
request's cross-account mapping. A restarted ingestor takes the pin over at once.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.aio.client import Client as NATS

from bus.pull import PullConsumer
from contracts import Identity
from contracts import topology as t
from tests.support.agents import ConnectAs

pytestmark = pytest.mark.integration

SPEC = t.consumer("ingestor")


def _pull(nc: NATS, batch: int = 10) -> PullConsumer:
    return PullConsumer(nc, SPEC.stream, SPEC.durable, batch, group=SPEC.pinned_group)


async def _receive(pull: PullConsumer, n: int, timeout_s: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < n and asyncio.get_running_loop().time() < deadline:
        for msg in await pull.next_batch(0.5):
            got.append(msg.data)
            await msg.ack()
    return got


async def test_an_empty_submission_does_not_cut_off_the_rest_of_the_pull(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    ingestor, client = await connect_as(Identity.INGESTOR), await connect_as(Identity.CLIENT)
    pull = _pull(ingestor)
    await pull.bind()
    await pull.next_batch(0.2)  # the pull request is open before anything is published
    js = client.jetstream()
    await js.publish("intent.submitted.AAPL", b"")
    for n in range(5):
        await js.publish("intent.submitted.AAPL", f"after {n}".encode())

    got = await _receive(pull, 6)

    assert got == [b"", *(f"after {n}".encode() for n in range(5))]
    assert pull.pin_id is not None


async def test_a_restarted_ingestor_takes_the_pin_over_without_waiting_for_its_ttl(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    client = await connect_as(Identity.CLIENT)
    js = client.jetstream()
    crashed = await connect_as(Identity.INGESTOR)
    first = _pull(crashed)
    await first.bind()
    await js.publish("intent.submitted.AAPL", b"one")
    assert await _receive(first, 1) == [b"one"]
    await crashed.close()  # gone; the server keeps its pin until the ttl runs out
    second = _pull(await connect_as(Identity.INGESTOR))
    await second.bind()
    await js.publish("intent.submitted.AAPL", b"two")

    got = await _receive(second, 1, timeout_s=SPEC.pin_ttl_s / 2)

    assert got == [b"two"]
    assert second.pin_id not in (None, first.pin_id)


async def test_a_consumer_whose_pin_was_taken_away_competes_again_and_gets_the_next_messages(
    ops_nc: NATS, connect_as: ConnectAs
) -> None:
    client = await connect_as(Identity.CLIENT)
    js = client.jetstream()
    pull = _pull(await connect_as(Identity.INGESTOR), batch=2)
    await pull.bind()
    await js.publish("intent.submitted.AAPL", b"before")
    assert await _receive(pull, 1) == [b"before"]
    lost = pull.pin_id
    await pull.next_batch(0.1)  # a request carrying the pin id is open
    # An operator unpins the group (`nats consumer unpin`): the open request is answered 423.
    unpin = f"$JS.API.CONSUMER.UNPIN.{SPEC.stream}.{SPEC.durable}"
    await ops_nc.request(unpin, json.dumps({"group": SPEC.pinned_group}).encode(), timeout=2)
    for n in range(5):
        await js.publish("intent.submitted.AAPL", f"after {n}".encode())

    got = await _receive(pull, 5, timeout_s=SPEC.pin_ttl_s / 2)

    assert got == [f"after {n}".encode() for n in range(5)]
    assert pull.pin_id not in (None, lost)
