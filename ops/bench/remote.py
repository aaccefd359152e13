"""A remote chat model behind the analyst: what one and two analysts sustain at offered rates.

The analyst's model is the fake OpenAI-compatible server of `ops.bench.remote_model` (an answer
after 1.0 +- 0.3 s), configured as `[analyst] provider = "openai_compatible"`; everything else
is the real stack of `ops.bench.e2e`, with its intents: without a rationale, so that the
analyst's retrieval is cached and what is measured is the model calls (`rationales=True`, or
`--rationales`, gives every intent its own, from `ops.bench.rationales`: then embedding them is
most of the analyst's work, see that benchmark). On one stack, one after the other:

1. one analyst, each offered rate (30, 60 and 120/s; quick: 60/s) for a fixed time;
2. a second analyst process (`tradeops agent run analyst` with a health port of its own) on the
   same durable consumer, the same rates;
3. the second stopped, the model capped at 16 calls in flight (429 with `Retry-After` above
   it): one analyst at 60/s. Last, so that no circuit the 429s opened affects another run.

A run offers its rate for `seconds`, then waits until every intent is posted, or until nothing
was posted for `STALL_S` (the rest are unfinished: their latency counts as infinite), so that
the next run starts on an idle pipeline. Per run:

- sustained intents/s: completions between the 2nd and 98th percentile of completion times over
  the time between them: the offered rate when the pipeline keeps up, its service rate if not;
- p50 / p99 submitted -> `ledger.posted`;
- degraded share: the run's analyses with `Analysis.degraded` (the offline reviewer stood in);
- model calls per intent (every request the model got, 429s included), peak calls in flight
  and 429s, from the model's counters;
- redeliveries: the analyst consumer's deliveries (its delivered consumer sequence) beyond one
  per intent analyzed.

Run alone: `python -m ops.bench.remote [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bus import Credentials, connect
from bus.headers import INTENT as INTENT_HEADER
from contracts import Identity, IntentAnalyzed, parse
from contracts import subjects as s
from contracts import topology as t
from ops.bench.e2e import bench_stack, intent_payload, percentile
from ops.bench.rationales import Rationales
from ops.bench.remote_model import FakeChatModel, ModelCounts
from ops.stack.embedded import EmbeddedStack, http_ok
from ops.stack.natsd import free_port
from ops.stack.supervisor import Supervised

RATES: Final = (30.0, 60.0, 120.0)
RATES_QUICK: Final = (60.0,)
SECONDS: Final = 30.0
SECONDS_QUICK: Final = 10.0
CAP: Final = 16
CAPPED_RATE: Final = 60.0
STALL_S: Final = 60.0
"""A run stops waiting for its intents once nothing was posted for this long."""
READY_TIMEOUT_S: Final = 180.0
ANALYST: Final[dict[str, Any]] = {
    "provider": "openai_compatible",
    "model": "bench-model",
    "max_tokens_per_day": 10**12,  # runs of thousands of calls: never the budget that stops one
}
"""The `[analyst]` table; `base_url` is the fake model's."""

TARGET_RATE: Final = 60.0
TARGET_ONE_PER_S: Final = 57.0
"""One analyst at an offered `TARGET_RATE`: sustained, with 0 degraded and one call per intent."""
TARGET_SCALE: Final = 1.7
"""Two analysts against one, at the highest offered rate."""
TARGET_CAPPED_PER_S: Final = 11.0
TARGET_CAPPED_DEGRADED: Final = 0.01


@dataclass
class RunWatch:
    """Follows one run's intents to their analysis and their posting."""

    sent: dict[str, float] = field(default_factory=dict)
    """Intents not yet posted, by id: when each was submitted."""
    ours: set[str] = field(default_factory=set)
    posted_at: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    degraded: dict[str, bool] = field(default_factory=dict)
    """Each analyzed intent: whether its (first) analysis was degraded."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_posted(self, msg: Msg) -> None:
        now = time.perf_counter()
        iid = (msg.headers or {}).get(INTENT_HEADER)
        started = self.sent.pop(iid, None) if iid else None
        if started is not None:
            self.posted_at.append(now)
            self.latencies_ms.append((now - started) * 1000)
            self.progress.set()

    async def on_analyzed(self, msg: Msg) -> None:
        iid = s.last_token(msg.subject)
        if iid in self.ours and iid not in self.degraded:
            self.degraded[iid] = parse(IntentAnalyzed, msg.data).analysis.degraded

    async def drain(self, stall_s: float) -> int:
        """Wait until every intent is posted or none was for `stall_s`; return how many were not."""
        while self.sent:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), timeout=stall_s)
            except TimeoutError:
                break
        return len(self.sent)


def sustained_rate(done_at: Sequence[float], trim: float = 0.02) -> float:
    """Completions per second between the `trim` and `1 - trim` quantiles of their times."""
    times = sorted(done_at)
    k = int(trim * len(times))
    if len(times) - 2 * k < 2:
        return 0.0
    first, last = times[k], times[len(times) - 1 - k]
    return (len(times) - 1 - 2 * k) / (last - first) if last > first else 0.0


@dataclass(frozen=True)
class OfferedRun:
    """One offered rate for a fixed time, and what came of it."""

    replicas: int
    offered_per_s: float
    seconds: float
    cap: int | None
    submitted: int
    unfinished: int
    sustained_per_s: float
    latencies_ms: tuple[float, ...]
    """Of the posted intents; the unfinished count as infinite in the percentiles."""
    analyzed: int
    degraded: int
    model: ModelCounts
    """The model's counts over the run (peak in flight within it)."""
    redeliveries: int | None
    """Deliveries to the analyst consumer beyond one per intent; None when not readable."""

    def latency_ms(self, q: float) -> float:
        return percentile([*self.latencies_ms, *[float("inf")] * self.unfinished], q)

    @property
    def degraded_share(self) -> float:
        return self.degraded / self.analyzed if self.analyzed else 0.0

    @property
    def calls_per_intent(self) -> float:
        return self.model.calls / self.submitted if self.submitted else 0.0


async def _deliveries(ops: NATS) -> int | None:
    """The analyst consumer's delivered consumer sequence: one per delivery, redeliveries too."""
    spec = t.consumer("analyst")
    try:
        info = await ops.jetstream().consumer_info(spec.stream, spec.durable)
    except Exception:  # a figure reported as unknown, not a failure
        return None
    return info.delivered.consumer_seq if info.delivered is not None else None


@dataclass
class Load:
    """The connections and the model a benchmark drives its runs with."""

    client: NATS
    ops: NATS
    model: FakeChatModel
    rationales: Rationales | None = None


async def offer(load: Load, rate: float, seconds: float, replicas: int) -> OfferedRun:
    """Submit at `rate` for `seconds`, wait for the intents; return what the run measured."""
    watch = RunWatch()
    subs = [
        await load.ops.subscribe(f"{s.LEDGER_POSTED}.>", cb=watch.on_posted),
        await load.ops.subscribe(s.intent_events(s.INTENT_ANALYZED), cb=watch.on_analyzed),
    ]
    before, delivered_before = load.model.counts(), await _deliveries(load.ops)
    load.model.reset_peak()
    js = load.client.jetstream()
    n = round(rate * seconds)
    acks = []
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        iid, subject, payload = intent_payload(i, load.rationales)
        watch.ours.add(iid)
        watch.sent[iid] = time.perf_counter()
        acks.append(await js.publish_async(subject, payload))
    await asyncio.gather(*acks)
    unfinished = await watch.drain(STALL_S)
    await asyncio.sleep(0.5)  # the last analyses' late copies, redeliveries' acks
    for sub in subs:
        await sub.unsubscribe()
    delivered_after = await _deliveries(load.ops)
    redeliveries = None
    if delivered_before is not None and delivered_after is not None:
        redeliveries = max(0, delivered_after - delivered_before - len(watch.degraded))
    return OfferedRun(
        replicas=replicas,
        offered_per_s=rate,
        seconds=seconds,
        cap=load.model.max_in_flight,
        submitted=n,
        unfinished=unfinished,
        sustained_per_s=sustained_rate(watch.posted_at),
        latencies_ms=tuple(watch.latencies_ms),
        analyzed=len(watch.degraded),
        degraded=sum(watch.degraded.values()),
        model=load.model.counts().since(before),
        redeliveries=redeliveries,
    )


@asynccontextmanager
async def second_analyst(stack: EmbeddedStack) -> AsyncIterator[Supervised]:
    """Another analyst process on the stack's durable consumer, ready; stopped on the way out."""
    settings, port = stack.settings, free_port()
    env = {
        "TRADEOPS_DATA_DIR": str(stack.data_dir),
        "TRADEOPS_NATS_PORT": str(settings.nats_port),
        "TRADEOPS_HEALTH_PORTS__ANALYST": str(port),
    }
    if stack.database_url:
        env["TRADEOPS_DATABASE_URL"] = stack.database_url
    argv = [sys.executable, "-m", "ops.cli", "agent", "run", "analyst", "--data-dir"]
    health = f"http://{settings.health_host}:{port}"
    log_path = stack.data_dir / "logs" / "analyst-2.log"
    proc = Supervised("analyst-2", [*argv, str(stack.data_dir)], log_path, env, health)
    await proc.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await asyncio.to_thread(http_ok, f"{health}/readyz"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the second analyst was not ready in {READY_TIMEOUT_S:.0f}s")
            await asyncio.sleep(0.2)
        yield proc
    finally:
        await proc.stop()


@dataclass(frozen=True)
class RemoteResult:
    runs: tuple[OfferedRun, ...]

    def find(self, replicas: int, rate: float, cap: int | None = None) -> OfferedRun | None:
        found = [
            r for r in self.runs if (r.replicas, r.offered_per_s, r.cap) == (replicas, rate, cap)
        ]
        return found[0] if found else None


async def run_remote_bench(
    rates: Sequence[float],
    seconds: float,
    capped_rate: float = CAPPED_RATE,
    *,
    rationales: bool = False,
) -> RemoteResult:
    """Every run of the module docstring on one stack; the fake model serves throughout."""
    model = FakeChatModel()
    runs: list[OfferedRun] = []
    async with model.serving() as url, bench_stack({**ANALYST, "base_url": url}) as stack:
        certs = stack.settings.certs_dir
        load = Load(
            client=await connect(stack.layout.url, Credentials(Identity.CLIENT, certs)),
            ops=await connect(stack.layout.url, Credentials(Identity.OPS, certs)),
            model=model,
            rationales=Rationales() if rationales else None,
        )
        try:
            await asyncio.sleep(1.0)  # first ticks
            await offer(load, 10.0, 2.0, replicas=1)  # warm: client, encoder, connections
            runs += [await offer(load, rate, seconds, replicas=1) for rate in rates]
            async with second_analyst(stack):
                runs += [await offer(load, rate, seconds, replicas=2) for rate in rates]
            model.max_in_flight = CAP
            runs.append(await offer(load, capped_rate, seconds, replicas=1))
            model.max_in_flight = None
        finally:
            await load.client.close()
            await load.ops.close()
    return RemoteResult(tuple(runs))


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value != float("inf") else "unfinished"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _run_rows(r: OfferedRun) -> list[tuple[str, str, str, str]]:
    who = f"{r.replicas} analyst{'s' if r.replicas > 1 else ''} @ {r.offered_per_s:.0f}/s"
    who += f", cap {r.cap}" if r.cap is not None else ""
    left = f", {r.unfinished:,} unfinished" if r.unfinished else ""
    redelivered = "?" if r.redeliveries is None else f"{r.redeliveries:,}"
    latency = f"{_ms(r.latency_ms(0.5))} / {_ms(r.latency_ms(0.99))} ms"
    throughput = f"{r.sustained_per_s:.1f}/s ({r.submitted:,} in {r.seconds:.0f}s{left})"
    model = (
        f"degraded {100 * r.degraded_share:.1f}% ({r.degraded:,}/{r.analyzed:,}), "
        f"calls/intent {r.calls_per_intent:.2f}, peak in flight {r.model.peak_in_flight}, "
        f"429s {r.model.rate_limited:,}, redeliveries {redelivered}"
    )
    return [(f"{who}: sustained, p50/p99", f"{throughput}, {latency}", "", ""),
            (f"{who}: model", model, "", "")]  # fmt: skip


def table(result: RemoteResult) -> list[tuple[str, str, str, str]]:
    """The rows (case, value, target, verdict): each run, then the targets."""
    rows = [row for run in result.runs for row in _run_rows(run)]
    one = result.find(1, TARGET_RATE)
    if one is not None:
        exact = one.degraded == 0 and one.model.calls == one.submitted == one.analyzed
        rows += [
            (
                f"1 analyst @ {TARGET_RATE:.0f}/s: sustained",
                f"{one.sustained_per_s:.1f}/s",
                f">= {TARGET_ONE_PER_S:.0f}/s",
                _verdict(one.sustained_per_s >= TARGET_ONE_PER_S and not one.unfinished),
            ),
            (
                f"1 analyst @ {TARGET_RATE:.0f}/s: degraded, model calls",
                f"{one.degraded:,} degraded, {one.model.calls:,} calls for {one.submitted:,}",
                "0, one per intent",
                _verdict(exact),
            ),
        ]
    top = max((r.offered_per_s for r in result.runs if r.cap is None), default=0.0)
    single, double = result.find(1, top), result.find(2, top)
    if single is not None and double is not None and single.sustained_per_s > 0:
        ratio = double.sustained_per_s / single.sustained_per_s
        keeps_up = single.sustained_per_s >= 0.95 * top and not single.unfinished
        note = " (one analyst already keeps up with this offer)" if keeps_up else ""
        verdict = "n/a" if keeps_up else _verdict(ratio >= TARGET_SCALE)
        case = f"2 analysts / 1 @ {top:.0f}/s, sustained"
        rows.append((case, f"{ratio:.2f}x{note}", f">= {TARGET_SCALE:.1f}x", verdict))
    capped = next((r for r in result.runs if r.cap is not None), None)
    if capped is not None:
        rows.append(
            (
                f"cap {capped.cap} in flight @ {capped.offered_per_s:.0f}/s: sustained, degraded",
                f"{capped.sustained_per_s:.1f}/s, {100 * capped.degraded_share:.1f}%",
                f">= {TARGET_CAPPED_PER_S:.0f}/s, <= {100 * TARGET_CAPPED_DEGRADED:.0f}%",
                _verdict(
                    capped.sustained_per_s >= TARGET_CAPPED_PER_S
                    and capped.degraded_share <= TARGET_CAPPED_DEGRADED
                ),
            )
        )
    return rows


async def bench(quick: bool, rationales: bool = False) -> list[tuple[str, str, str, str]]:
    """The benchmark at its full or quick size, as table rows."""
    result = await run_remote_bench(
        RATES_QUICK if quick else RATES, SECONDS_QUICK if quick else SECONDS, rationales=rationales
    )
    return table(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.remote")
    parser.add_argument("--quick", action="store_true", help="60/s only, 10 s per run")
    parser.add_argument("--rationales", action="store_true", help="a rationale on every intent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)
    for row in asyncio.run(bench(args.quick, args.rationales)):
        print(" | ".join(cell for cell in row if cell))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
