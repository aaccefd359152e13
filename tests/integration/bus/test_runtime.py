"""The consumer runtime against a real nats-server with mutual TLS and the real topology."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from bus import (
    ConsumerRuntime,
    Delivery,
    Emit,
    Transient,
    decode_advisory,
    exhausted_handler,
    one_by_one,
)
from bus.provision import consumer_config
from bus.signing import SignatureStatus, Verifier
from contracts import DeadLetter, Identity, IntentAccepted, SubmitIntent
from contracts import topology as t
from contracts.topology import ConsumerSpec
from ops.stack.natsd import NatsServer
from tests.support.agents import ConnectAs
from tests.support.deadletters import refers_to
from tests.support.pipeline import (
    accept,
    count_subject,
    decode_submitted,
    eventually,
    intent_payload,
    publish_all,
    publisher_for,
    read_subject,
)

pytestmark = pytest.mark.integration

INGESTOR = t.consumer("ingestor")


async def start_runtime(
    nc_factory: ConnectAs,
    certs_dir: Path,
    handler_fn: object = None,
    spec: ConsumerSpec = INGESTOR,
) -> tuple[ConsumerRuntime[SubmitIntent], asyncio.Task[None]]:
    nc = await nc_factory(Identity.INGESTOR)
    handler = handler_fn or one_by_one(_async(accept))
    runtime: ConsumerRuntime[SubmitIntent] = ConsumerRuntime(
        nc.jetstream(),
        spec,
        decode_submitted,
        handler,  # type: ignore[arg-type]
        publisher_for(nc, certs_dir, Identity.INGESTOR),
        fetch_timeout_s=0.5,
    )
    return runtime, asyncio.create_task(runtime.run())


def _async(fn):  # type: ignore[no-untyped-def]
    async def wrapped(item):  # type: ignore[no-untyped-def]
        return fn(item)

    return wrapped


async def stop(runtime: ConsumerRuntime[SubmitIntent], task: asyncio.Task[None]) -> None:
    runtime.stop()
    await asyncio.wait_for(task, 10)


def accepted_ids(msgs: Sequence[Msg]) -> Counter[str]:
    return Counter(str(IntentAccepted.model_validate_json(m.data).intent_id) for m in msgs)


async def test_transient_failure_is_retried_after_a_delay_and_then_processed_once(
    ops_nc, connect_as: ConnectAs, certs_dir: Path
) -> None:
    # Arrange: the handler fails the first delivery of every message.
    seen: list[tuple[int, float]] = []

    async def flaky(item: Delivery[SubmitIntent]) -> list[Emit]:
        seen.append((item.num_delivered, time.monotonic()))
        if item.num_delivered == 1:
            raise Transient("ledger database unavailable")
        return accept(item)

    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [intent_payload()])

    # Act
    runtime, task = await start_runtime(connect_as, certs_dir, one_by_one(flaky))
    await eventually(lambda: _has(ops_nc, "intent.accepted.AAPL.*", 1))
    await asyncio.sleep(0.5)  # room for any wrongful second output
    await stop(runtime, task)

    # Assert: one output, delivered twice, the retry after the first backoff delay.
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.AAPL.*") == 1
    assert [n for n, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= INGESTOR.backoff_s[0] * 0.9
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert runtime.stats.failed == 1 and runtime.stats.processed == 1


async def _has(ops_nc, subject: str, n: int, stream: str = t.INTENTS) -> bool:  # type: ignore[no-untyped-def]
    return await count_subject(ops_nc, stream, subject) >= n


async def test_poison_message_lands_in_dead_letter_stream_with_original_bytes_and_reason(
    ops_nc, connect_as: ConnectAs, certs_dir: Path
) -> None:
    # Arrange: one good intent and one with an unknown field and a float quantity.
    poison = b'{"account":"paper-1","symbol":"AAPL","side":"buy","quantity":1e999,"x":1}'
    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [intent_payload(), poison])

    # Act
    runtime, task = await start_runtime(connect_as, certs_dir)
    await eventually(lambda: _has(ops_nc, "dlq.ingestor.*", 1, t.DLQ))
    await eventually(lambda: _has(ops_nc, "intent.accepted.AAPL.*", 1))
    await stop(runtime, task)

    # Assert: the dead letter carries the exact bytes, the reason and the failing fields.
    [msg] = await read_subject(ops_nc, t.DLQ, "dlq.ingestor.*")
    letter = DeadLetter.model_validate_json(msg.data)
    assert refers_to(letter, poison)
    assert letter.reason == "invalid_payload"
    assert "quantity" in letter.error and "x: Extra inputs are not permitted" in letter.error
    assert letter.original_subject == "intent.submitted.AAPL"
    assert letter.stream == t.SUBMISSIONS and letter.delivery_count == 1
    status, signer = Verifier.from_dir(certs_dir).check(msg.subject, msg.data, msg.headers)
    assert (status, signer) == (SignatureStatus.VALID, "ingestor")
    info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_message_failing_every_delivery_is_dead_lettered_from_the_max_deliveries_advisory(
    ops_nc, connect_as: ConnectAs, certs_dir: Path
) -> None:
    # Arrange: a consumer that gives up after 2 deliveries, and a handler that always fails.
    spec = replace(INGESTOR, max_deliver=2, backoff_s=(0.1,))
    await ops_nc.jetstream().add_consumer(t.SUBMISSIONS, consumer_config(spec))

    async def always_failing(item: Delivery[SubmitIntent]) -> list[Emit]:
        raise RuntimeError("broker adapter crashed")

    payload = intent_payload()
    client = await connect_as(Identity.CLIENT)
    await publish_all(client, "intent.submitted.AAPL", [payload])
    nc = await connect_as(Identity.INGESTOR)
    publisher = publisher_for(nc, certs_dir, Identity.INGESTOR)
    exhausted = ConsumerRuntime(
        nc.jetstream(),
        t.dead_letter_consumer(spec),
        decode_advisory,
        exhausted_handler(nc.jetstream(), Identity.INGESTOR),
        publisher,
        fetch_timeout_s=0.5,
    )

    # Act
    runtime, task = await start_runtime(connect_as, certs_dir, one_by_one(always_failing), spec)
    exhausted_task = asyncio.create_task(exhausted.run())
    await eventually(lambda: _has(ops_nc, "dlq.ingestor.*", 1, t.DLQ))
    await stop(runtime, task)
    exhausted.stop()
    await exhausted_task

    # Assert
    [msg] = await read_subject(ops_nc, t.DLQ, "dlq.ingestor.*")
    letter = DeadLetter.model_validate_json(msg.data)
    assert letter.reason == "max_deliveries"
    assert letter.delivery_count == 2
    assert refers_to(letter, payload)
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.AAPL.*") == 0


class CrashBeforeAck(ConsumerRuntime[SubmitIntent]):
    """A runtime that publishes outputs but never acks, and dies once all `expected` are out."""

    expected = 0

    async def _publish_and_settle(self, emits, retry):  # type: ignore[no-untyped-def]
        futures = [await self.publisher.start(out) for _msg, outs, _dead in emits for out in outs]
        await self.publisher.settle(futures)
        seen = getattr(self, "seen", set())
        seen.update(msg.metadata.sequence.stream for msg, _outs, _dead in emits)
        self.seen = seen
        if len(seen) >= self.expected:
            raise asyncio.CancelledError  # the process is gone: nothing is acked


async def test_redelivery_after_crash_between_publish_and_ack_produces_no_duplicate(
    ops_nc, connect_as: ConnectAs, certs_dir: Path
) -> None:
    # Arrange: a short ack wait so the crashed batch is redelivered quickly.
    spec = replace(INGESTOR, ack_wait_s=1.0)
    await ops_nc.jetstream().add_consumer(t.SUBMISSIONS, consumer_config(spec))
    client = await connect_as(Identity.CLIENT)
    n = 50
    await publish_all(client, "intent.submitted.MSFT", [intent_payload("MSFT") for _ in range(n)])
    crash_nc = await connect_as(Identity.INGESTOR)
    crashing = CrashBeforeAck(
        crash_nc.jetstream(),
        spec,
        decode_submitted,
        one_by_one(_async(accept)),
        publisher_for(crash_nc, certs_dir, Identity.INGESTOR),
        fetch_timeout_s=0.5,
    )
    crashing.expected = n

    # Act: the first process publishes every output and dies; a second one takes over.
    with pytest.raises(asyncio.CancelledError):
        await crashing.run()
    await crash_nc.close()
    assert await count_subject(ops_nc, t.INTENTS, "intent.accepted.MSFT.*") == n
    runtime, task = await start_runtime(connect_as, certs_dir, spec=spec)

    async def all_acked() -> bool:
        info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
        return info.num_ack_pending == 0 and info.num_pending == 0 and runtime.stats.processed == n

    await eventually(all_acked)
    await stop(runtime, task)

    # Assert: every intent accepted exactly once downstream despite two publishes each.
    counts = accepted_ids(await read_subject(ops_nc, t.INTENTS, "intent.accepted.MSFT.*"))
    assert len(counts) == n and set(counts.values()) == {1}


async def test_after_nats_server_restart_mid_stream_every_message_is_processed_exactly_once(
    ops_nc, connect_as: ConnectAs, certs_dir: Path, nats_server: NatsServer
) -> None:
    # Arrange: a slow-ish handler so the restart lands mid-stream.
    n = 2000
    client = await connect_as(Identity.CLIENT)
    payloads = [intent_payload("NVDA") for _ in range(n)]
    await publish_all(client, "intent.submitted.NVDA", payloads)

    async def slow_batch(items: Sequence[Delivery[SubmitIntent]]) -> list[list[Emit]]:
        await asyncio.sleep(0.05)
        return [accept(i) for i in items]

    runtime, task = await start_runtime(connect_as, certs_dir, slow_batch)
    runtime.batch_size = 100

    # Act: restart the server once some but not all messages are through.
    await eventually(lambda: _has(ops_nc, "intent.accepted.NVDA.*", 300))
    await nats_server.restart()

    async def done() -> bool:
        if ops_nc.is_reconnecting or not ops_nc.is_connected:
            return False
        info = await ops_nc.jetstream().consumer_info(t.SUBMISSIONS, "ingestor")
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(done, timeout_s=60)
    await stop(runtime, task)

    # Assert: the output holds each intent exactly once; nothing lost, nothing doubled.
    counts = accepted_ids(await read_subject(ops_nc, t.INTENTS, "intent.accepted.NVDA.*"))
    expected = {json.loads(p)["intent_id"] for p in payloads}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
