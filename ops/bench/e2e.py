"""End to end: intents submitted -> posted with all five agents on the embedded stack.

Real parts throughout: nats-server with mutual TLS and file storage, Postgres (pgserver), the
analyst with MiniLM retrieval and the offline reviewer. The universe is opened up (large limits,
no rate limit) so that every intent fills and the figure measures the pipeline, not rejections.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from agents.settings import load_settings
from bus import Credentials, connect
from bus.headers import INTENT as INTENT_HEADER
from contracts import Identity
from ops.stack.embedded import EmbeddedStack
from ops.stack.scratch import OPEN_CASH_USD, OPEN_LIMITS, OPEN_PRICES, write_scratch_config

SYMBOLS = tuple(OPEN_PRICES)
LOW_RATE_PER_S = 50.0
"""A rate at which the cores are mostly idle: the pipeline's latency without queueing for a core."""


@asynccontextmanager
async def bench_stack(analyst: Mapping[str, Any] | None = None) -> AsyncIterator[EmbeddedStack]:
    """The open universe on a throw-away stack; `analyst`: its `[analyst]` table, if not offline."""
    base = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    write_scratch_config(
        base,
        accounts={"paper-1": OPEN_CASH_USD},
        prices=OPEN_PRICES,
        limits=OPEN_LIMITS,
        analyst=analyst,
    )
    try:
        async with EmbeddedStack(load_settings(base)).running() as stack:
            yield stack
    finally:
        shutil.rmtree(base, ignore_errors=True)


RationaleSource = Iterator[str]
"""Where intents take their rationale from, one per intent; None: intents without one."""


def intent_payload(n: int, rationales: RationaleSource | None = None) -> tuple[str, str, bytes]:
    """The n-th intent of a load: (intent id, subject, payload); small alternating orders."""
    iid = str(uuid.uuid4())
    symbol = SYMBOLS[n % 2]
    side = "buy" if n % 4 < 2 else "sell"
    body = {"intent_id": iid, "account": "paper-1", "symbol": symbol, "side": side,
            "quantity": "0.01"}  # fmt: skip
    if rationales is not None:
        body["rationale"] = next(rationales)
    return iid, f"intent.submitted.{symbol}", json.dumps(body).encode()


@dataclass
class PostedWatch:
    """Counts `ledger.posted` events and the latency of each from its submission."""

    sent: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    posted: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def on_posted(self, msg: Msg) -> None:
        now = time.perf_counter()
        iid = (msg.headers or {}).get(INTENT_HEADER)
        started = self.sent.pop(iid, None) if iid else None
        if started is None:
            return
        self.latencies_ms.append((now - started) * 1000)
        self.posted += 1
        if self.posted >= self.expected:
            self.done.set()


@dataclass(frozen=True)
class E2EResult:
    intents: int
    seconds: float
    rate_per_s: float
    paced_rate_per_s: float
    paced_count: int
    p50_ms: float
    p99_ms: float
    low_p50_ms: float
    low_p99_ms: float
    high_rate_per_s: float
    high_p50_ms: float
    high_p99_ms: float
    ready_after_s: float
    rss_mib: dict[str, float]
    paced_cpu: dict[str, float]
    """Share of one core each process used during the fixed-rate run."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (from /proc; 0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip().startswith("postgres"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@dataclass
class CpuProbe:
    """CPU used per process between `start()` and `stop()`, as a share of one core."""

    pids: dict[str, list[int]]
    _before: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0
    share: dict[str, float] = field(default_factory=dict)

    def _used(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()}

    def start(self) -> None:
        self._before, self._wall = self._used(), time.perf_counter()

    def stop(self) -> None:
        wall = time.perf_counter() - self._wall
        after = self._used()
        self.share = {name: (after[name] - self._before[name]) / wall for name in after}


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank, as every e2e figure reads it)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _watch(ops: NATS, expected: int) -> PostedWatch:
    watch = PostedWatch(expected=expected)
    await ops.subscribe("ledger.posted.>", cb=watch.on_posted)
    return watch


async def max_throughput(
    client: NATS,
    ops: NATS,
    n: int,
    rationales: RationaleSource | None = None,
    timeout_s: float | None = None,
) -> tuple[float, float]:
    """Publish n intents as fast as the client can; time until the n-th is posted.

    `timeout_s`: how long to wait for the n-th (default: 120 s or n / 50 s, whichever is longer).
    """
    watch = await _watch(ops, n)
    js = client.jetstream()
    started = time.perf_counter()
    futures = []
    for i in range(n):
        iid, subject, payload = intent_payload(i, rationales)
        watch.sent[iid] = time.perf_counter()
        futures.append(await js.publish_async(subject, payload))
    await asyncio.gather(*futures)
    await asyncio.wait_for(watch.done.wait(), timeout=timeout_s or max(120.0, n / 50))
    elapsed = time.perf_counter() - started
    return n / elapsed, elapsed


async def paced_latency(
    client: NATS,
    ops: NATS,
    rate: float,
    seconds: float,
    rationales: RationaleSource | None = None,
    timeout_s: float = 120.0,
) -> PostedWatch:
    """Publish at a fixed rate; return per-intent submitted -> posted latencies.

    `timeout_s`: how long to wait for the last one after the last is published.
    """
    n = int(rate * seconds)
    watch = await _watch(ops, n)
    js = client.jetstream()
    start = time.perf_counter()
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        iid, subject, payload = intent_payload(i, rationales)
        watch.sent[iid] = time.perf_counter()
        await js.publish_async(subject, payload)
    await asyncio.wait_for(watch.done.wait(), timeout=timeout_s)
    return watch


@asynccontextmanager
async def warm_desk(
    warm: int, analyst: Mapping[str, Any] | None = None
) -> AsyncIterator[tuple[EmbeddedStack, NATS, NATS]]:
    """A bench stack with a client and an ops connection, its first ticks in and `min(500,
    warm)` intents through it (caches and connections warm); the connections closed after."""
    async with bench_stack(analyst) as stack:
        certs = stack.settings.certs_dir
        client = await connect(stack.layout.url, Credentials(Identity.CLIENT, certs))
        ops = await connect(stack.layout.url, Credentials(Identity.OPS, certs))
        try:
            await asyncio.sleep(1.0)  # first ticks
            await max_throughput(client, ops, min(500, warm))
            yield stack, client, ops
        finally:
            await client.close()
            await ops.close()


async def run_e2e_bench(n: int, paced_rate: float, paced_seconds: float) -> E2EResult:
    async with warm_desk(n) as (stack, client, ops):
        rate, elapsed = await max_throughput(client, ops, n)
        pids = {name: [c.proc.pid] for name, c in stack.components.items() if c.proc is not None}
        probe = CpuProbe(pids | {"postgres": _postgres_pids(), "load client": [os.getpid()]})
        probe.start()
        paced = await paced_latency(client, ops, paced_rate, paced_seconds)
        probe.stop()
        low = await paced_latency(client, ops, LOW_RATE_PER_S, paced_seconds)
        high = await paced_latency(client, ops, 0.8 * rate, paced_seconds)
        memory = {
            name: rss_mib(c.proc.pid)
            for name, c in stack.components.items()
            if c.proc is not None and c.proc.returncode is None
        }
        ready_after_s = stack.ready_after_s or 0.0
    return E2EResult(
        intents=n,
        seconds=elapsed,
        rate_per_s=rate,
        paced_rate_per_s=paced_rate,
        paced_count=len(paced.latencies_ms),
        p50_ms=statistics.median(paced.latencies_ms),
        p99_ms=percentile(paced.latencies_ms, 0.99),
        low_p50_ms=statistics.median(low.latencies_ms),
        low_p99_ms=percentile(low.latencies_ms, 0.99),
        high_rate_per_s=0.8 * rate,
        high_p50_ms=statistics.median(high.latencies_ms),
        high_p99_ms=percentile(high.latencies_ms, 0.99),
        ready_after_s=ready_after_s,
        rss_mib=memory,
        paced_cpu=probe.share,
    )
