"""Run every benchmark and print one table: `python -m ops.bench [--quick]`.

Each benchmark is a function `(quick) -> rows`, registered in `BENCHMARKS`. The exit status is 1
when a benchmark's behaviour check fails (a FAIL row); a missed throughput target (MISS) is
reported but does not fail the run, since these machines are shared and noisy. Verdicts are on
wall-clock msgs/s; the client-CPU figures beside them show whether a MISS is the plumbing or a
busy machine (the Python client is the bottleneck, so CPU per message is what the plumbing costs).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass

from contracts import TradingState
from ops.bench import TARGET_VS_FASTSTREAM, TARGET_VS_RAW, Variant, run_hop_bench
from ops.bench.audit import run_audit_bench
from ops.bench.cpu import bench as cpu_bench
from ops.bench.e2e import LOW_RATE_PER_S, run_e2e_bench
from ops.bench.embed import bench as embed_bench
from ops.bench.killswitch import TARGET_P99_MS as KS_TARGET_P99_MS
from ops.bench.killswitch import TRIALS as KS_TRIALS
from ops.bench.killswitch import TRIALS_QUICK as KS_TRIALS_QUICK
from ops.bench.killswitch import Probe, run_killswitch_bench
from ops.bench.lookup import EVENTS as LOOKUP_EVENTS
from ops.bench.lookup import EVENTS_QUICK as LOOKUP_EVENTS_QUICK
from ops.bench.lookup import TARGET_LOOKUP_MS, TARGET_WAIT_OVERHEAD_MS, pct, run_lookup_bench
from ops.bench.rationales import bench as rationales_bench
from ops.bench.remote import bench as remote_bench
from ops.bench.riskmem import INTENTS as RISKMEM_INTENTS
from ops.bench.riskmem import INTENTS_QUICK as RISKMEM_INTENTS_QUICK
from ops.bench.riskmem import run_riskmem_bench
from ops.bench.riskmem_table import table as riskmem_table
from ops.bench.verify import measure_verify_cost
from ops.stack.natsd import nats_server_binary

HOP_MSGS = 20_000
HOP_MSGS_QUICK = 5_000
HOP_ROUNDS = 3


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    bench: str
    case: str
    value: str
    target: str = ""
    verdict: str = ""


Benchmark = Callable[[bool], Awaitable[list[Row]]]


def _verdict(ok: bool, *, failing: str = "MISS") -> str:
    return "PASS" if ok else failing


async def hop(quick: bool) -> list[Row]:
    """One agent step: tradeops' runtime against raw nats-py and FastStream."""
    n = HOP_MSGS_QUICK if quick else HOP_MSGS
    result = await run_hop_bench(n, HOP_ROUNDS)
    rows = [Row("hop", "messages x rounds", f"{n:,} x {HOP_ROUNDS}, alternating, medians")]
    for variant in Variant:
        runs = " / ".join(f"{rate:,.0f}" for rate in result.rates(variant))
        rows.append(
            Row(
                "hop",
                f"{variant} msgs/s",
                f"{result.median(variant):,.0f}  (runs {runs}; "
                f"client CPU {result.median_cpu_us(variant):.0f} us/msg)",
            )
        )
    for other, ratio, target in (
        (Variant.RAW, result.runtime_vs_raw, TARGET_VS_RAW),
        (Variant.FASTSTREAM, result.runtime_vs_faststream, TARGET_VS_FASTSTREAM),
    ):
        rows.append(
            Row(
                "hop",
                f"runtime / {other}",
                f"{ratio:.2f}x  (per client CPU second: {result.cpu_ratio(other):.2f}x)",
                f">= {target:.2f}x",
                _verdict(ratio >= target),
            )
        )
    exact = all(r.outputs == n and r.inputs_acked == n for r in result.runs)
    rows.append(
        Row(
            "hop",
            "outputs, inputs acked",
            f"N={n} in all {len(result.runs)} runs" if exact else "not exactly N in some run",
            "exactly N",
            _verdict(exact, failing="FAIL"),
        )
    )
    return rows


E2E_INTENTS = 10_000
E2E_INTENTS_QUICK = 2_000
TARGET_E2E_PER_S = 2_500
TARGET_P99_MS = 25.0


async def e2e(quick: bool) -> list[Row]:
    """Submitted -> posted with all five agents, TLS, file storage, Postgres, offline analyst."""
    n = E2E_INTENTS_QUICK if quick else E2E_INTENTS
    r = await run_e2e_bench(n, paced_rate=200, paced_seconds=5 if quick else 15)
    return [
        Row("e2e", "intents submitted -> posted", f"{r.intents:,} in {r.seconds:.1f}s"),
        Row(
            "e2e",
            "throughput intents/s",
            f"{r.rate_per_s:,.0f}",
            f">= {TARGET_E2E_PER_S:,}",
            _verdict(r.rate_per_s >= TARGET_E2E_PER_S),
        ),
        Row(
            "e2e",
            f"latency p50 at {r.paced_rate_per_s:.0f}/s",
            f"{r.p50_ms:.1f} ms ({r.paced_count:,} intents)",
        ),
        Row(
            "e2e",
            f"latency p99 at {r.paced_rate_per_s:.0f}/s",
            f"{r.p99_ms:.1f} ms",
            f"<= {TARGET_P99_MS:.0f} ms",
            _verdict(r.p99_ms <= TARGET_P99_MS),
        ),
        Row(
            "e2e",
            f"latency p50/p99 at {LOW_RATE_PER_S:.0f}/s (cores mostly idle)",
            f"{r.low_p50_ms:.1f} / {r.low_p99_ms:.1f} ms",
        ),
        Row(
            "e2e",
            f"latency p50/p99 at 80% of max ({r.high_rate_per_s:,.0f}/s)",
            f"{r.high_p50_ms:.1f} / {r.high_p99_ms:.1f} ms",
        ),
        Row(
            "e2e",
            f"CPU during the {r.paced_rate_per_s:.0f}/s run (% of one core)",
            f"total {100 * sum(r.paced_cpu.values()):.0f}% of {100 * (os.cpu_count() or 1)}%: "
            + ", ".join(f"{name} {100 * share:.0f}" for name, share in r.paced_cpu.items()),
        ),
        Row("e2e", "`up` to every agent ready", f"{r.ready_after_s:.1f} s"),
        Row(
            "e2e",
            "resident memory per process",
            ", ".join(f"{name} {mib:.0f} MiB" for name, mib in r.rss_mib.items()),
        ),
    ]


async def killswitch(quick: bool) -> list[Row]:
    """Kill ack -> every agent reports halted, over many kill/resume trials."""
    r = await run_killswitch_bench(KS_TRIALS_QUICK if quick else KS_TRIALS)
    halted, active = TradingState.HALTED, TradingState.ACTIVE
    return [
        Row(
            "killswitch",
            "trials",
            f"{r.trials} kills+resumes per probe, {len(r.agents)} agents, "
            f"polled every {r.poll_interval_ms:g} ms",
        ),
        Row("killswitch", "kill ack -> all /status halted p50", f"{r.p50_ms:.1f} ms"),
        Row(
            "killswitch",
            "kill ack -> all /status halted p99",
            f"{r.p99_ms:.1f} ms",
            f"<= {KS_TARGET_P99_MS:.0f} ms",
            _verdict(r.p99_ms <= KS_TARGET_P99_MS),
        ),
        Row(
            "killswitch",
            "kill ack -> all gauges halted p50/p99",
            f"{r.p50(halted, Probe.GAUGE):.1f} / {r.p99(halted, Probe.GAUGE):.1f} ms",
        ),
        Row(
            "killswitch",
            "resume ack -> all /status active p50/p99",
            f"{r.p50(active):.1f} / {r.p99(active):.1f} ms",
        ),
    ]


AUDIT_EVENTS = 20_000
AUDIT_EVENTS_QUICK = 5_000
TARGET_AUDIT_PER_S = 20_000


async def audit(quick: bool) -> list[Row]:
    """`tradeops audit verify`'s replay and signature checks over signed events."""
    r = await run_audit_bench(
        AUDIT_EVENTS_QUICK if quick else AUDIT_EVENTS, rounds=1 if quick else 3
    )
    cold, warm = r.best_cold.rate, r.warm.rate
    return [
        Row(
            "audit",
            "verify events/s (cold: every signature checked)",
            f"{cold:,.0f}",
            f">= {TARGET_AUDIT_PER_S:,}",
            _verdict(cold >= TARGET_AUDIT_PER_S),
        ),
        Row("audit", "verify events/s (re-audit, verified-signature cache)", f"{warm:,.0f}"),
    ]


async def lookup(quick: bool) -> list[Row]:
    """One intent among a year of history: the trail lookup, the commands, `submit --wait`."""
    r = await run_lookup_bench(LOOKUP_EVENTS_QUICK if quick else LOOKUP_EVENTS)
    rows = [Row("lookup", "events stored (signed chains)", f"{r.events:,} in {r.fill_s:.0f} s")]
    for case, values, target in (
        ("find_trail p50 / p99 (in process)", r.lookup_ms, TARGET_LOOKUP_MS),
        ("`intent show ID` p50 / p99 (whole command)", r.show_ms, TARGET_LOOKUP_MS),
        ("`audit trail ID` p50 / p99 (whole command)", r.trail_ms, TARGET_LOOKUP_MS),
        ("`tradeops --version` p50 / p99 (start-up)", r.floor_ms, 0.0),
        ("`submit --wait` overhead p50 / p99", r.wait_ms, TARGET_WAIT_OVERHEAD_MS),
    ):
        p99 = pct(values, 0.99)
        rows.append(
            Row(
                "lookup",
                case,
                f"{statistics.median(values):,.1f} / {p99:,.1f} ms",
                f"<= {target:,.0f} ms" if target else "",
                _verdict(p99 <= target) if target else "",
            )
        )
    if not r.outcomes_ok:
        rows.append(Row("lookup", "every sampled trail filled, no problems", "no", "", "FAIL"))
    return rows


async def verify(quick: bool) -> list[Row]:
    """CPU cost of checking one input's provenance (risk, executor and ledger do, per input)."""
    cost = measure_verify_cost(1000 if quick else 5000)
    return [
        Row(
            "verify",
            f"input verification, CPU per message ({cost.payload_bytes:,} B analysis)",
            f"{cost.us_per_message:,.0f} us  (x{cost.messages:,}; ~4 inputs per intent)",
        )
    ]


async def riskmem(quick: bool) -> list[Row]:
    """The risk gate's resident memory after many decided intents: its bound against a small one."""
    result = await run_riskmem_bench(RISKMEM_INTENTS_QUICK if quick else RISKMEM_INTENTS)
    return [Row("riskmem", *cells) for cells in riskmem_table(result)]


async def embed(quick: bool) -> list[Row]:
    """The embedding model's CPU per rationale: torch (the reference) against OpenVINO."""
    return [Row("embed", *cells) for cells in await embed_bench(quick)]


async def rationales(quick: bool) -> list[Row]:
    """End to end with a rationale of its own on every intent, beside intents without one."""
    return [Row("rationales", *cells) for cells in await rationales_bench(quick)]


async def remote(quick: bool) -> list[Row]:
    """The analyst against a remote model answering in ~1 s: one and two analysts, a 429 cap."""
    return [Row("remote", *cells) for cells in await remote_bench(quick)]


async def cpu(quick: bool) -> list[Row]:
    """Stack CPU per intent at an offered 100/s beside at full speed."""
    return [Row("cpu", *cells) for cells in await cpu_bench(quick)]


BENCHMARKS: dict[str, Benchmark] = {
    "hop": hop,
    "e2e": e2e,
    "killswitch": killswitch,
    "audit": audit,
    "lookup": lookup,
    "verify": verify,
    "riskmem": riskmem,
    "embed": embed,
    "rationales": rationales,
    "remote": remote,
    "cpu": cpu,
}


def machine_info() -> str:
    """Return the machine and versions the figures were measured with."""
    server = subprocess.run(
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()  # "nats-server: v2.15.1"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"cpus {os.cpu_count()} | load {load} | python {platform.python_version()} | "
        f"{server.replace(':', '')} | nats-py {importlib.metadata.version('nats-py')} | "
        f"faststream {importlib.metadata.version('faststream')}"
    )


def render(rows: list[Row]) -> str:
    """Return the rows as an aligned text table."""
    cells = [astuple(r) for r in [Row("bench", "case", "value", "target", "verdict"), *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


async def run_all(quick: bool, only: list[str] | None = None) -> list[Row]:
    rows: list[Row] = []
    for name, bench in BENCHMARKS.items():
        if not only or name in only:
            rows += await bench(quick)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench", description="Run every benchmark and print one table."
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, well under 2 min")
    parser.add_argument(
        "--only", choices=sorted(BENCHMARKS), action="append", help="run only these"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # Closing TLS connections makes asyncio and the bus log noise that is not a finding here.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)

    header = machine_info()
    started = time.monotonic()
    rows = asyncio.run(run_all(args.quick, args.only))
    mode = "quick" if args.quick else "full"
    print(f"tradeops benchmarks ({mode}, {time.monotonic() - started:.0f}s)")
    print(header)
    print(render(rows))
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
