"""The runtime's pacing on a real nats-server: batches in flight, flow control, in-progress acks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from bus import ConsumerRuntime, Delivery, Emit
from bus.handling import Outcome, Pacing, Ready
from bus.provision import consumer_config
from contracts import Identity, SubmitIntent
from contracts import topology as t
from contracts.topology import ConsumerSpec
from tests.support.agents import ConnectAs
from tests.support.pipeline import (
    accept,
    count_subject,
    decode_submitted,
    eventually,
    intent_payload,
    publish_all,
    publisher_for,
)

pytestmark = pytest.mark.integration

INGESTOR = t.consumer("ingestor")
SLOW = Decimal(13)
"""Quantity of an intent whose handling waits for the test's release."""


async def runtime_for(
    connect_as: ConnectAs,
    certs_dir: Path,
    handler: object,
    pacing: Pacing,
    spec: ConsumerSpec = INGESTOR,
) -> tuple[ConsumerRuntime[SubmitIntent], asyncio.Task[None]]:
    nc = await connect_as(Identity.INGESTOR)
    runtime: ConsumerRuntime[SubmitIntent] = ConsumerRuntime(
        nc.jetstream(),
        spec,
        decode_submitted,
        handler,  # type: ignore[arg-type]
        publisher_for(nc, certs_dir, Identity.INGESTOR),
        fetch_timeout_s=0.3,
        pacing=pacing,
    )
    return runtime, asyncio.create_task(runtime.run())


async def stop(runtime: ConsumerRuntime[SubmitIntent], task: asyncio.Task[None]) -> None:
    runtime.stop()
    await asyncio.wait_for(task, 15)


async def accepted(ops_nc: NATS) -> int:
    return await count_subject(ops_nc, t.INTENTS, "intent.accepted.AAPL.*")


async def short_ack_wait(ops_nc: NATS, ack_wait_s: float) -> ConsumerSpec:
    spec = replace(INGESTOR, ack_wait_s=ack_wait_s)
    await ops_nc.jetstream().add_consumer(t.SUBMISSIONS, consumer_config(spec))
    return spec


@pytest.mark.parametrize("heartbeat", [True, False])
async def test_handling_longer_than_the_ack_wait_is_redelivered_only_without_in_progress_acks(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path, heartbeat: bool
) -> None:
    spec = await short_ack_wait(ops_nc, 1.5)
    deliveries: Counter[int] = Counter()

    async def slow(items: Sequence[Delivery[SubmitIntent]]) -> list[Outcome]:
        for item in items:
            deliveries[item.stream_seq] += 1
        await asyncio.sleep(4.0)  # over twice the ack wait
        return [accept(item) for item in items]

    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [intent_payload() for _ in range(5)])
    pacing = Pacing(max_batches=4, heartbeat=heartbeat)
    runtime, task = await runtime_for(connect_as, certs_dir, slow, pacing, spec)

    await eventually(lambda: _count_is(ops_nc, 5), timeout_s=20)
    await asyncio.sleep(0.5)  # room for a late redelivery to show
    await stop(runtime, task)

    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    if heartbeat:
        assert set(deliveries.values()) == {1} and len(deliveries) == 5
        assert info.num_redelivered == 0
        assert runtime.stats.in_progress_sent >= 5 * 2
    else:  # the control: the same handler without in-progress acks is handled twice
        assert max(deliveries.values()) >= 2
    assert await accepted(ops_nc) == 5  # de-duplicated by Nats-Msg-Id either way


async def _count_is(ops_nc: NATS, n: int) -> bool:
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    return await accepted(ops_nc) == n and info.num_ack_pending == 0


async def test_a_slow_batch_does_not_hold_the_batches_fetched_after_it(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    release = asyncio.Event()

    async def handle(items: Sequence[Delivery[SubmitIntent]]) -> list[Outcome]:
        if any(item.value.quantity == SLOW for item in items):
            await release.wait()
        return [accept(item) for item in items]

    client = await connect_as(Identity.CLIENT)
    runtime, task = await runtime_for(connect_as, certs_dir, handle, Pacing(max_batches=8))
    await publish_all(client, "intent.submitted.AAPL", [intent_payload(quantity="13")])
    await eventually(lambda: _true(runtime.in_hand == 1))

    for _ in range(3):
        await publish_all(client, "intent.submitted.AAPL", [intent_payload()])
    await eventually(lambda: _accepted_is(ops_nc, 3))
    assert runtime.in_hand == 1
    release.set()
    await eventually(lambda: _count_is(ops_nc, 4))
    await stop(runtime, task)


async def _true(value: bool) -> bool:
    return value


async def _accepted_is(ops_nc: NATS, n: int) -> bool:
    return await accepted(ops_nc) == n


async def test_a_streaming_handler_settles_each_delivery_as_its_outcome_is_ready(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    release = asyncio.Event()

    async def handle(items: Sequence[Delivery[SubmitIntent]]) -> AsyncIterator[Ready]:
        slow = [i for i, item in enumerate(items) if item.value.quantity == SLOW]
        yield [(i, accept(item)) for i, item in enumerate(items) if i not in slow]
        await release.wait()
        yield [(i, accept(items[i])) for i in slow]

    client = await connect_as(Identity.CLIENT)
    payloads = [intent_payload(quantity="13"), intent_payload(), intent_payload()]
    await publish_all(client, "intent.submitted.AAPL", payloads)
    runtime, task = await runtime_for(connect_as, certs_dir, handle, Pacing())

    await eventually(lambda: _accepted_is(ops_nc, 2))
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert info.num_ack_pending == 1 and runtime.in_hand == 1
    release.set()
    await eventually(lambda: _count_is(ops_nc, 3))
    await stop(runtime, task)


async def test_a_delivery_the_streaming_handler_gives_no_outcome_for_is_retried(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    seen: Counter[int] = Counter()

    async def handle(items: Sequence[Delivery[SubmitIntent]]) -> AsyncIterator[Ready]:
        for item in items:
            seen[item.stream_seq] += 1
        yield [(i, accept(item)) for i, item in enumerate(items) if item.num_delivered > 1]

    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [intent_payload(), intent_payload()])
    runtime, task = await runtime_for(connect_as, certs_dir, handle, Pacing())

    await eventually(lambda: _count_is(ops_nc, 2))
    await stop(runtime, task)

    assert set(seen.values()) == {2}
    assert runtime.stats.failed == 2 and runtime.stats.processed == 2


async def test_flow_control_holds_no_more_deliveries_than_the_handler_has_room_for(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    release = asyncio.Event()
    most = 0

    async def handle(items: Sequence[Delivery[SubmitIntent]]) -> list[Outcome]:
        nonlocal most
        most = max(most, runtime.in_hand)
        await release.wait()
        return [accept(item) for item in items]

    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [intent_payload() for _ in range(12)])
    pacing = Pacing(max_batches=12, capacity=lambda: 4)
    runtime, task = await runtime_for(connect_as, certs_dir, handle, pacing)

    await eventually(lambda: _true(runtime.in_hand == 4))
    await asyncio.sleep(1.0)  # time for any extra fetch to show
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert runtime.in_hand == 4 and most <= 4
    assert info.num_ack_pending == 4  # the server was asked for no more than that
    release.set()
    await eventually(lambda: _count_is(ops_nc, 12))
    await stop(runtime, task)
    assert most <= 4


async def test_stop_waits_for_every_batch_in_flight(
    ops_nc: NATS, connect_as: ConnectAs, certs_dir: Path
) -> None:
    async def handle(items: Sequence[Delivery[SubmitIntent]]) -> list[list[Emit]]:
        await asyncio.sleep(0.5)
        return [accept(item) for item in items]

    client = await connect_as(Identity.CLIENT)
    runtime, task = await runtime_for(connect_as, certs_dir, handle, Pacing(max_batches=4))
    for _ in range(3):
        await publish_all(client, "intent.submitted.AAPL", [intent_payload()])
        await asyncio.sleep(0.05)
    await eventually(lambda: _true(runtime.in_hand == 3))

    await stop(runtime, task)

    assert await accepted(ops_nc) == 3
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert info.num_ack_pending == 0
