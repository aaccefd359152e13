"""One hop done three ways: by tradeops' runtime, by raw nats-py and by FastStream.

Each variant reads `n` `SubmitIntent`s from its lane's input stream, validates each, builds its
`IntentAccepted` (`accept`), publishes it signed with `Nats-Msg-Id` (`encode`, as
`bus.Publisher` does) to the output stream and acks the input after the publish is acknowledged:
the same work in every variant, so that `ops.bench.hop` compares the plumbing. A variant's runner
returns the `Stopwatch` of its run, from the first fetch to the n-th output's acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bus import ConsumerRuntime, Credentials, Delivery, Emit, Outcome, Publisher, Signer, connect
from bus.headers import INTENT as INTENT_HEADER
from bus.headers import KIND as KIND_HEADER
from bus.headers import MSG_ID as MSG_ID_HEADER
from contracts import Identity, IntentAccepted, Side, SubmitIntent, TradeIntent, parse
from contracts import subjects as s
from contracts.topology import ConsumerSpec

PAYLOAD_BYTES = 256
FETCH_BATCH = 500
FETCH_TIMEOUT_S = 1.0
PUB_ACK_TIMEOUT_S = 10.0
SYMBOL = "AAPL"
PRODUCER = Identity.INGESTOR
"""The hop is the ingestor's step: its events are produced and signed as the ingestor."""


class Variant(StrEnum):
    """Who does the hop."""

    RUNTIME = "runtime"
    RAW = "raw"
    FASTSTREAM = "faststream"


@dataclass(frozen=True)
class Lane:
    """One run's own streams, subjects and durable consumer, named after the run."""

    in_stream: str
    out_stream: str
    in_subject: str
    out_subject: str
    consumer: ConsumerSpec

    @classmethod
    def of(cls, variant: Variant, round_: int) -> Lane:
        tag = f"{variant}_{round_}_{uuid.uuid4().hex[:8]}".upper()
        in_stream, in_subject = f"BENCH_{tag}_IN", f"bench.{tag}.{s.of(s.INTENT_SUBMITTED, SYMBOL)}"
        consumer = ConsumerSpec(in_stream, f"hop-{tag}", PRODUCER, in_subject)
        out_subject = f"bench.{tag}.{s.of(s.INTENT_ACCEPTED, SYMBOL)}"
        return cls(in_stream, f"BENCH_{tag}_OUT", in_subject, out_subject, consumer)


class Stopwatch:
    """Wall and process CPU time from `start` to `stop` (the first fetch, the n-th output ack)."""

    def __init__(self) -> None:
        self._wall = self._cpu = 0.0
        self.seconds = self.cpu_seconds = 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = time.process_time() - self._cpu


@dataclass(frozen=True)
class HopEnv:
    """What every run needs: the server's URL, the ops credentials and the signer."""

    url: str
    credentials: Credentials
    signer: Signer


# --- the work, identical in every variant -------------------------------------------------------


def submissions(n: int) -> list[bytes]:
    """Return `n` valid `SubmitIntent` payloads of about 256 bytes, each with its own intent id."""

    def one(rationale: str) -> bytes:
        return (
            SubmitIntent(
                account="paper-1",
                symbol=SYMBOL,
                side=Side.BUY,
                quantity=Decimal("10"),
                strategy="bench-hop",
                rationale=rationale,
                intent_id=uuid.uuid4(),
            )
            .model_dump_json()
            .encode()
        )

    pad = max(0, PAYLOAD_BYTES - len(one("")))
    rationale = ("momentum above the 20-day mean; " * 16)[:pad]
    return [one(rationale) for _ in range(n)]


def accept(submitted: SubmitIntent) -> IntentAccepted:
    """Build the hop's output event for one validated submission."""
    intent_id = submitted.intent_id or uuid.uuid4()
    return IntentAccepted.derive(
        intent_id=intent_id,
        producer=PRODUCER,
        intent=TradeIntent.from_submission(submitted, intent_id),
        reference_price=None,
        reference_price_ts=None,
    )


def encode(signer: Signer, subject: str, event: IntentAccepted) -> tuple[bytes, dict[str, str]]:
    """Return payload and headers exactly as `bus.Publisher.encode` builds them."""
    payload = event.model_dump_json().encode()
    headers = signer.headers(subject, payload)
    headers[MSG_ID_HEADER] = str(event.event_id)
    headers[KIND_HEADER] = event.kind
    headers[INTENT_HEADER] = str(event.intent_id)
    return payload, headers


# --- the three variants ---------------------------------------------------------------------------


class _AckCounter(Publisher):
    """The runtime's publisher, noting when the n-th publish acknowledgement arrived."""

    def __init__(self, js: JetStreamContext, signer: Signer, n: int, watch: Stopwatch) -> None:
        super().__init__(js, signer, ack_timeout_s=PUB_ACK_TIMEOUT_S)
        self.n = n
        self.watch = watch
        self.acked = 0
        self.done = asyncio.Event()

    async def settle(self, futures: Sequence[asyncio.Future[PubAck]]) -> list[bool]:
        results = await super().settle(futures)
        self.acked += sum(results)
        if self.acked >= self.n and not self.done.is_set():
            self.watch.stop()
            self.done.set()
        return results


async def _run_runtime(env: HopEnv, lane: Lane, n: int) -> Stopwatch:
    watch = Stopwatch()
    nc = await connect(env.url, env.credentials)
    try:
        js = nc.jetstream()
        publisher = _AckCounter(js, env.signer, n, watch)

        def decode(msg: Msg) -> SubmitIntent:
            return parse(SubmitIntent, msg.data)

        async def handle(items: Sequence[Delivery[SubmitIntent]]) -> Sequence[Outcome]:
            return [[Emit(lane.out_subject, accept(item.value))] for item in items]

        runtime = ConsumerRuntime(
            js, lane.consumer, decode, handle, publisher, batch_size=FETCH_BATCH
        )
        watch.start()
        task = asyncio.create_task(runtime.run())
        done = asyncio.create_task(publisher.done.wait())
        await asyncio.wait({task, done}, return_when=asyncio.FIRST_COMPLETED)
        runtime.stop()
        done.cancel()
        await task  # finishes the batch in hand (its acks), then returns
        await nc.flush()
        return watch
    finally:
        await nc.close()


async def _run_raw(env: HopEnv, lane: Lane, n: int) -> Stopwatch:
    watch = Stopwatch()
    nc = await connect(env.url, env.credentials)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(durable=lane.consumer.durable, stream=lane.in_stream)
        handled = 0
        watch.start()
        while handled < n:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
            except (NatsTimeoutError, TimeoutError):
                continue
            futures = []
            for msg in msgs:
                event = accept(parse(SubmitIntent, msg.data))
                payload, headers = encode(env.signer, lane.out_subject, event)
                futures.append(await js.publish_async(lane.out_subject, payload, headers=headers))
            await asyncio.wait_for(asyncio.gather(*futures), PUB_ACK_TIMEOUT_S)
            if handled + len(msgs) >= n:
                watch.stop()
            for msg in msgs:
                await msg.ack()
            handled += len(msgs)
        await nc.flush()
        return watch
    finally:
        await nc.close()


async def _run_faststream(env: HopEnv, lane: Lane, n: int) -> Stopwatch:
    # What a FastStream user writes: a pull subscriber fetching batches and handling each message
    # concurrently, a stream publisher awaiting its acknowledgement, ack after the handler returns.
    # FastStream is a dev extra only, so it is imported here, not when `ops` is.
    from faststream.nats import JStream, NatsBroker, NatsSecurity, PullSub  # noqa: PLC0415
    from faststream.nats.annotations import NatsMessage  # noqa: PLC0415

    broker = NatsBroker(
        env.url,
        security=NatsSecurity(ssl_context=env.credentials.ssl_context()),
        inbox_prefix=s.inbox_prefix(env.credentials.identity),
        pending_size=64 * 1024 * 1024,  # as bus.connect
        logger=None,
    )
    out = broker.publisher(
        lane.out_subject, stream=JStream(lane.out_stream, declare=False), timeout=PUB_ACK_TIMEOUT_S
    )
    watch = Stopwatch()
    done = asyncio.Event()
    acked = 0

    async def hop(msg: NatsMessage) -> None:
        nonlocal acked
        event = accept(parse(SubmitIntent, msg.body))
        payload, headers = encode(env.signer, lane.out_subject, event)
        await out.publish(payload, headers=headers)
        acked += 1
        if acked == n:
            watch.stop()
            done.set()

    subscribe = broker.subscriber(
        lane.in_subject,
        stream=JStream(lane.in_stream, declare=False),
        durable=lane.consumer.durable,
        pull_sub=PullSub(batch_size=FETCH_BATCH, timeout=FETCH_TIMEOUT_S),
    )
    subscribe(hop)
    await broker.connect()
    try:
        watch.start()
        await broker.start()
        await done.wait()
        return watch
    finally:
        await broker.stop()  # waits for the running handlers, whose acks follow their publish


Runner = Callable[[HopEnv, Lane, int], Awaitable[Stopwatch]]

RUNNERS: dict[Variant, Runner] = {
    Variant.RUNTIME: _run_runtime,
    Variant.RAW: _run_raw,
    Variant.FASTSTREAM: _run_faststream,
}
