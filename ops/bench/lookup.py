"""One intent among a year of history: `intent show`, `audit trail` and `submit --wait`.

A fresh nats-server (mutual TLS, file storage) is filled with complete signed chains (the audit
benchmark's generator: submitted, accepted, analyzed, approved, filled, posted), about
1,000,000 events. Then, for intents spread over the whole history:
- the lookup itself (`ops.audit.trail.find_trail`, what both commands run), in process;
- the whole commands `tradeops intent show ID` and `tradeops audit trail ID` as a user runs
  them (a new Python process: imports, connect, lookup, render), beside `tradeops --version`,
  the floor any command pays;
- `submit --wait`'s overhead: a waiter follows a new intent while its chain is published; the
  time from the terminal event's publish acknowledgement to the waiter's answer.

`python -m ops.bench.lookup [--events N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client as NATS

from bus import Credentials, Emit, Publisher, Signer, Verifier, connect
from bus.identity import CertPaths
from bus.replay import read_one
from contracts import Envelope, Identity
from contracts import topology as t
from ops.audit.facts import fact_of
from ops.audit.trail import find_trail
from ops.bench.audit import EVENTS_PER_INTENT, chains, fill_streams
from ops.client import wait_outcome
from ops.stack.natsd import scratch_server

TARGET_LOOKUP_MS = 300.0
TARGET_WAIT_OVERHEAD_MS = 100.0
EVENTS = 1_000_000
EVENTS_QUICK = 100_000
SAMPLES = 30
COMMAND_RUNS = 5


@dataclass
class LookupResult:
    events: int
    fill_s: float
    lookup_ms: list[float] = field(default_factory=list)
    show_ms: list[float] = field(default_factory=list)
    trail_ms: list[float] = field(default_factory=list)
    floor_ms: list[float] = field(default_factory=list)
    wait_ms: list[float] = field(default_factory=list)
    outcomes_ok: bool = True


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _sample_ids(nc: NATS, intents: int, n: int) -> list[str]:
    """Intent ids read from submissions spread evenly over the history (oldest to newest)."""
    seqs = sorted({1 + round(i * (intents - 1) / max(1, n - 1)) for i in range(n)})
    out: list[str] = []
    for seq in seqs:
        msg = await read_one(nc, t.SUBMISSIONS, seq)
        if msg is not None and (iid := fact_of(msg).intent_id):
            out.append(iid)
    return out


def _intent_of(event: Envelope) -> str:
    return str(getattr(event, "intent_id", ""))


def _cli(data_dir: Path, url: str, *args: str) -> float:
    env = {**os.environ, "TRADEOPS_NATS_URL": url, "TRADEOPS_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        capture_output=True,
        check=False,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in (0,):
        raise RuntimeError(
            f"tradeops {' '.join(args)} exited {done.returncode}: {done.stdout[-2000:]!r}"
        )
    return elapsed


async def _wait_overhead(nc: NATS, certs_dir: Path, trials: int) -> list[float]:
    """Time from the terminal event's publish ack to `wait_outcome`'s answer, per new intent."""
    js = nc.jetstream()
    publishers = {
        identity: Publisher(
            js, Signer.from_file(identity, CertPaths(certs_dir).signing_key(identity))
        )
        for identity in (
            Identity.INGESTOR, Identity.ANALYST, Identity.RISK, Identity.EXECUTOR, Identity.LEDGER
        )
    }  # fmt: skip
    info = await js.stream_info(t.SUBMISSIONS)
    out: list[float] = []
    items = list(chains(trials))
    for n in range(trials):
        chunk = items[n * EVENTS_PER_INTENT : (n + 1) * EVENTS_PER_INTENT]
        submission = next(x for x in chunk if not isinstance(x, Emit))
        events = [x for x in chunk if isinstance(x, Emit)]
        # the generator numbers submissions from 1: renumber for this store
        seq = info.state.last_seq + 1 + n
        accepted = events[0].event.model_copy(update={"submission_seq": seq})
        events[0] = Emit(events[0].subject, accepted)
        waiter = asyncio.create_task(wait_outcome(nc, _intent_of(accepted), certs_dir, 30.0))
        await asyncio.sleep(0.05)  # the waiter is following the intent's subjects
        await js.publish(submission[0], submission[1])
        for emit in events[:-1]:
            await publishers[Identity(emit.event.producer)].publish([emit])
        await asyncio.sleep(0.02)
        await publishers[Identity(events[-1].event.producer)].publish([events[-1]])
        acked = time.perf_counter()
        trail = await waiter
        out.append((time.perf_counter() - acked) * 1000)
        if trail.outcome != "filled":
            raise RuntimeError(f"waiter answered {trail.outcome} for a filled chain")
    return out


async def run_lookup_bench(events: int, samples: int = SAMPLES) -> LookupResult:
    intents = max(1, events // EVENTS_PER_INTENT)
    async with scratch_server("tradeops-bench-lookup-") as (server, paths):
        url, certs = server.layout.url, paths.certs_dir
        started = time.perf_counter()
        await fill_streams(url, certs, intents)
        result = LookupResult(intents * EVENTS_PER_INTENT, time.perf_counter() - started)
        nc = await connect(url, Credentials(Identity.OPS, certs))
        try:
            verifier = Verifier.from_dir(certs)
            ids = await _sample_ids(nc, intents, samples)
            for iid in ids:
                begun = time.perf_counter()
                trail = await find_trail(nc, iid, verifier)
                result.lookup_ms.append((time.perf_counter() - begun) * 1000)
                result.outcomes_ok &= trail.outcome == "filled" and not trail.problems
            data_dir = certs.parent
            picks = random.Random(7).sample(ids, min(COMMAND_RUNS, len(ids)))
            for iid in picks:
                result.floor_ms.append(await asyncio.to_thread(_cli, data_dir, url, "--version"))
                result.show_ms.append(
                    await asyncio.to_thread(_cli, data_dir, url, "intent", "show", iid)
                )
                result.trail_ms.append(
                    await asyncio.to_thread(_cli, data_dir, url, "audit", "trail", iid.upper())
                )
            result.wait_ms = await _wait_overhead(nc, certs, 10)
        finally:
            await nc.close()
    return result


def render(r: LookupResult) -> str:
    def line(name: str, values: list[float]) -> str:
        return (
            f"{name:<34} p50 {statistics.median(values):8.1f} ms  p99 {pct(values, 0.99):8.1f} ms"
            f"  max {max(values):8.1f} ms  (n={len(values)})"
        )

    return "\n".join(
        [
            f"{r.events:,} events stored in {r.fill_s:.0f} s; every sampled trail filled, "
            f"no problems: {r.outcomes_ok}",
            line("find_trail (in process)", r.lookup_ms),
            line("tradeops intent show ID", r.show_ms),
            line("tradeops audit trail ID", r.trail_ms),
            line("tradeops --version (start-up)", r.floor_ms),
            line("submit --wait overhead", r.wait_ms),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.lookup", description=__doc__)
    parser.add_argument("--events", type=int, default=EVENTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("asyncio", "tradeops.bus"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    result = asyncio.run(run_lookup_bench(args.events))
    print(render(result))
    return 0 if result.outcomes_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
