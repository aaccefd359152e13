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
from collections.abc import Sequence
from dataclasses import dataclass

from nats.js import JetStreamContext

from bus import Credentials, Signer, connect
from bus.provision import consumer_config, stream_config
from contracts import Identity
from contracts.topology import StreamSpec
from ops.bench.hop_variants import PRODUCER, RUNNERS, HopEnv, Lane, Variant, submissions
from ops.stack.natsd import scratch_server

TARGET_VS_RAW = 0.9
"""The runtime must reach this fraction of hand-tuned nats-py's throughput."""
TARGET_VS_FASTSTREAM = 3.0
"""The runtime must reach this multiple of FastStream's throughput."""

WARMUP_MSGS = 500


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


# --- one run: streams, preload, run, check, clean up ----------------------------------------------


async def _prepare(js: JetStreamContext, lane: Lane, payloads: Sequence[bytes]) -> None:
    for name, subject in ((lane.in_stream, lane.in_subject), (lane.out_stream, lane.out_subject)):
        await js.add_stream(stream_config(StreamSpec(name, (subject,)), replicas=1))
    await js.add_consumer(lane.in_stream, consumer_config(lane.consumer))
    for payload in payloads:
        await js.publish_async(lane.in_subject, payload)
    await asyncio.wait_for(js.publish_async_completed(), 30.0)


async def _outcome(js: JetStreamContext, lane: Lane, n: int) -> tuple[int, int]:
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
    env: HopEnv, js: JetStreamContext, variant: Variant, round_: int, n: int
) -> HopRun:
    lane = Lane.of(variant, round_)
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
        env = HopEnv(
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
