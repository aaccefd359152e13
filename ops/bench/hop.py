"""The hop benchmark: one agent step done by tradeops' runtime, by raw nats-py and by FastStream.

A hop reads N pre-published `SubmitIntent`s from an input stream, validates each, builds its
`IntentAccepted`, publishes it signed with `Nats-Msg-Id` to an output stream and acks the input
after the publish is acknowledged. The work per message is the same in every variant, so the
comparison is of the plumbing. All variants run in one process against one nats-server (mutual
TLS, file storage) started here, each on its own streams, consumer and ops connection, in
alternating rounds.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from collections.abc import Sequence
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
from bus.provision import consumer_config, stream_config
from contracts import Identity, IntentAccepted, Side, SubmitIntent, TradeIntent, parse
from contracts import subjects as s
from contracts.topology import ConsumerSpec, StreamSpec
from ops.stack.natsd import scratch_server

TARGET_VS_RAW = 0.9
"""The runtime must reach this fraction of hand-tuned nats-py's throughput."""
TARGET_VS_FASTSTREAM = 3.0
"""The runtime must reach this multiple of FastStream's throughput."""

PAYLOAD_BYTES = 256
FETCH_BATCH = 500
FETCH_TIMEOUT_S = 1.0
PUB_ACK_TIMEOUT_S = 10.0
WARMUP_MSGS = 500
SYMBOL = "AAPL"
PRODUCER = Identity.INGESTOR
"""The hop is the ingestor's step: its events are produced and signed as the ingestor."""


class Variant(StrEnum):
    RUNTIME = "runtime"
    RAW = "raw"
    FASTSTREAM = "faststream"


@dataclass(frozen=True)
class HopRun:
    """One timed run of one variant."""

    variant: Variant
    round: int
    n: int
    seconds: float
    """From the first fetch to the last output's publish acknowledgement."""
    cpu_seconds: float
    """CPU time this process spent in that span: steadier than `seconds` on a busy machine."""
    outputs: int
    """Messages in the output stream afterwards."""
    inputs_acked: int
    """Input messages acknowledged (the consumer's ack floor)."""

    @property
    def msgs_per_s(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_us_per_msg(self) -> float:
        return self.cpu_seconds / self.n * 1e6


@dataclass(frozen=True)
class HopResult:
    """Every run of the hop benchmark, with medians and the ratios the targets are set on."""

    n: int
    rounds: int
    runs: tuple[HopRun, ...]

    def rates(self, variant: Variant) -> list[float]:
        return [r.msgs_per_s for r in self.runs if r.variant is variant]

    def median(self, variant: Variant) -> float:
        return statistics.median(self.rates(variant))

    def median_cpu_us(self, variant: Variant) -> float:
        return statistics.median(r.cpu_us_per_msg for r in self.runs if r.variant is variant)

    @property
    def runtime_vs_raw(self) -> float:
        return self.median(Variant.RUNTIME) / self.median(Variant.RAW)

    @property
    def runtime_vs_faststream(self) -> float:
        return self.median(Variant.RUNTIME) / self.median(Variant.FASTSTREAM)

    def cpu_ratio(self, other: Variant) -> float:
        """Return how many messages the runtime handles per CPU second, relative to `other`."""
        return self.median_cpu_us(other) / self.median_cpu_us(Variant.RUNTIME)


@dataclass(frozen=True)
class _Lane:
    """One run's own streams, subjects and durable consumer, named after the run."""

    in_stream: str
    out_stream: str
    in_subject: str
    out_subject: str
    consumer: ConsumerSpec

    @classmethod
    def of(cls, variant: Variant, round_: int) -> _Lane:
        tag = f"{variant}_{round_}_{uuid.uuid4().hex[:8]}".upper()
        in_stream, in_subject = f"BENCH_{tag}_IN", f"bench.{tag}.{s.of(s.INTENT_SUBMITTED, SYMBOL)}"
        consumer = ConsumerSpec(in_stream, f"hop-{tag}", PRODUCER, in_subject)
        out_subject = f"bench.{tag}.{s.of(s.INTENT_ACCEPTED, SYMBOL)}"
        return cls(in_stream, f"BENCH_{tag}_OUT", in_subject, out_subject, consumer)


class _Stopwatch:
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
class _Env:
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

    def __init__(self, js: JetStreamContext, signer: Signer, n: int, watch: _Stopwatch) -> None:
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


async def _run_runtime(env: _Env, lane: _Lane, n: int) -> _Stopwatch:
    watch = _Stopwatch()
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


async def _run_raw(env: _Env, lane: _Lane, n: int) -> _Stopwatch:
    watch = _Stopwatch()
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


async def _run_faststream(env: _Env, lane: _Lane, n: int) -> _Stopwatch:
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
    watch = _Stopwatch()
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


RUNNERS = {
    Variant.RUNTIME: _run_runtime,
    Variant.RAW: _run_raw,
    Variant.FASTSTREAM: _run_faststream,
}


# --- one run: streams, preload, run, check, clean up ----------------------------------------------


async def _prepare(js: JetStreamContext, lane: _Lane, payloads: Sequence[bytes]) -> None:
    for name, subject in ((lane.in_stream, lane.in_subject), (lane.out_stream, lane.out_subject)):
        await js.add_stream(stream_config(StreamSpec(name, (subject,)), replicas=1))
    await js.add_consumer(lane.in_stream, consumer_config(lane.consumer))
    for payload in payloads:
        await js.publish_async(lane.in_subject, payload)
    await asyncio.wait_for(js.publish_async_completed(), 30.0)


async def _outcome(js: JetStreamContext, lane: _Lane, n: int) -> tuple[int, int]:
    """Return (outputs, inputs acked), waiting briefly for the server to apply the last acks."""
    deadline = time.monotonic() + 5.0
    while True:
        outputs = (await js.stream_info(lane.out_stream)).state.messages
        floor = (await js.consumer_info(lane.in_stream, lane.consumer.durable)).ack_floor
        acked = floor.stream_seq if floor else 0
        if (outputs >= n and acked >= n) or time.monotonic() > deadline:
            return int(outputs), int(acked)
        await asyncio.sleep(0.05)


async def _run_once(
    env: _Env, js: JetStreamContext, variant: Variant, round_: int, n: int
) -> HopRun:
    lane = _Lane.of(variant, round_)
    await _prepare(js, lane, submissions(n))
    gc.collect()  # start every run from the same heap, not with the previous run's garbage
    try:
        watch = await asyncio.wait_for(RUNNERS[variant](env, lane, n), 30.0 + n / 200)
        outputs, acked = await _outcome(js, lane, n)
    finally:
        await js.delete_stream(lane.in_stream)
        await js.delete_stream(lane.out_stream)
    return HopRun(variant, round_, n, watch.seconds, watch.cpu_seconds, outputs, acked)


async def run_hop_bench(n: int, rounds: int, *, warmup: bool = True) -> HopResult:
    """Run every variant `rounds` times, alternating, on `n` messages; return all runs.

    A short untimed warm-up run of each variant goes first unless `warmup` is false.
    """
    async with scratch_server("tradeops-bench-") as (server, paths):
        layout = server.layout
        env = _Env(
            url=layout.url,
            credentials=Credentials(Identity.OPS, paths.certs_dir),
            signer=Signer.from_file(PRODUCER, paths.signing_key(PRODUCER)),
        )
        setup = await connect(env.url, env.credentials)
        try:
            js = setup.jetstream()
            if warmup:
                for variant in Variant:
                    await _run_once(env, js, variant, 0, min(n, WARMUP_MSGS))
            runs = [
                await _run_once(env, js, variant, round_, n)
                for round_ in range(1, rounds + 1)
                for variant in Variant
            ]
        finally:
            await setup.close()
    return HopResult(n, rounds, tuple(runs))
