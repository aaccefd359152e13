"""CPU per intent at an offered 100/s beside CPU per intent at full speed.

What an intent costs depends on the load: at full speed every hop reads and acknowledges large
batches, at a modest rate each message is its own socket read, publish, ack and event-loop wake-up
in every process. Both are measured on one stack of `ops.bench.e2e` (offline analyst, intents
without a rationale, as the e2e figures): the user + system CPU time of every process of the
stack (nats-server, the Postgres server and its backends, each agent and anything it started),
read from `/proc/<pid>/stat` before and after the window, summed and divided by the intents
posted in it. Only the stack's own processes count: the processes are the stack's components
and their descendants, and Postgres is the postmaster of the stack's data dir and its children,
so that other stacks on a shared machine are not. The benchmark process (publishing, timing, and
the stack's in-process outcome and storage-metrics services) is reported beside, not counted.

Run alone: `python -m ops.bench.cpu [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ops.bench.e2e import cpu_seconds, max_throughput, paced_latency, warm_desk
from ops.stack.embedded import EmbeddedStack

OFFERED_RATE: Final = 100.0
SECONDS: Final = 20.0
SECONDS_QUICK: Final = 8.0
INTENTS: Final = 10_000
INTENTS_QUICK: Final = 2_000
TARGET_RATIO: Final = 2.0
"""CPU per intent at `OFFERED_RATE` over CPU per intent at full speed."""
LOAD_CLIENT: Final = "load client"


def parent_pids(proc: Path = Path("/proc")) -> dict[int, int]:
    """Every process's parent, from `/proc/<pid>/stat` (processes that vanish are left out)."""
    parents: dict[int, int] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(roots: Iterable[int], parents: Mapping[int, int]) -> set[int]:
    """The processes under `roots` (children, their children, ...), not the roots themselves."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the Postgres server of a stack's data dir (first line of `postmaster.pid`)."""
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stack_processes(stack: EmbeddedStack) -> dict[str, set[int]]:
    """The stack's processes by part: each component and its descendants, Postgres' tree."""
    parents = parent_pids()
    parts = {
        name: {c.proc.pid} | descendants([c.proc.pid], parents)
        for name, c in stack.components.items()
        if c.proc is not None and c.proc.returncode is None
    }
    postmaster = postmaster_pid(stack.data_dir)
    if postmaster is not None:
        parts["postgres"] = {postmaster} | descendants([postmaster], parents)
    return parts


Snapshot = dict[int, tuple[str, float]]
"""CPU seconds used so far by pid, with the part it belongs to."""


def snapshot(parts: Mapping[str, Iterable[int]]) -> Snapshot:
    return {pid: (name, cpu_seconds(pid)) for name, pids in parts.items() for pid in pids}


def used_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per part between two snapshots; a process new since `before` counts whole."""
    used: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        used[name] = used.get(name, 0.0) + max(0.0, cpu - before.get(pid, (name, 0.0))[1])
    return used


@dataclass(frozen=True)
class CpuWindow:
    """One measured window: intents posted in it and the CPU each part used."""

    intents: int
    seconds: float
    cpu_s: dict[str, float]
    """CPU seconds by part; the load client's too, which `stack_cpu_s` leaves out."""

    @property
    def rate_per_s(self) -> float:
        return self.intents / self.seconds if self.seconds else 0.0

    @property
    def stack_cpu_s(self) -> float:
        return sum(v for name, v in self.cpu_s.items() if name != LOAD_CLIENT)

    def ms_per_intent(self, part: str | None = None) -> float:
        used = self.stack_cpu_s if part is None else self.cpu_s.get(part, 0.0)
        return 1000 * used / self.intents if self.intents else 0.0


@dataclass(frozen=True)
class CpuResult:
    full: CpuWindow
    paced: CpuWindow
    offered_per_s: float

    @property
    def ratio(self) -> float:
        full = self.full.ms_per_intent()
        return self.paced.ms_per_intent() / full if full else 0.0


def _parts(stack: EmbeddedStack) -> dict[str, set[int]]:
    return stack_processes(stack) | {LOAD_CLIENT: {os.getpid()}}


async def run_cpu_bench(n: int, seconds: float, rate: float = OFFERED_RATE) -> CpuResult:
    """Full speed (`n` intents), then `rate` for `seconds`, on one stack."""
    async with warm_desk(n) as (stack, client, ops):
        before = snapshot(_parts(stack))
        _, elapsed = await max_throughput(client, ops, n)
        full = CpuWindow(n, elapsed, used_between(before, snapshot(_parts(stack))))
        before = snapshot(_parts(stack))
        started = asyncio.get_running_loop().time()
        watch = await paced_latency(client, ops, rate, seconds)
        paced = CpuWindow(
            len(watch.latencies_ms),
            asyncio.get_running_loop().time() - started,
            used_between(before, snapshot(_parts(stack))),
        )
    return CpuResult(full=full, paced=paced, offered_per_s=rate)


def _breakdown(w: CpuWindow) -> str:
    parts = sorted(w.cpu_s, key=lambda name: (name == LOAD_CLIENT, name))
    return ", ".join(f"{name} {w.ms_per_intent(name):.2f}" for name in parts)


def table(r: CpuResult) -> list[tuple[str, str, str, str]]:
    """The rows (case, value, target, verdict)."""
    return [
        (
            "stack CPU per intent at full speed",
            f"{r.full.ms_per_intent():.2f} ms ({r.full.intents:,} at {r.full.rate_per_s:,.0f}/s)",
            "",
            "",
        ),
        (
            f"stack CPU per intent at {r.offered_per_s:.0f}/s",
            f"{r.paced.ms_per_intent():.2f} ms ({r.paced.intents:,} in {r.paced.seconds:.1f}s)",
            "",
            "",
        ),
        (
            f"CPU per intent {r.offered_per_s:.0f}/s : full speed",
            f"{r.ratio:.2f}x",
            f"<= {TARGET_RATIO:.0f}x",
            "PASS" if r.ratio <= TARGET_RATIO else "MISS",
        ),
        ("ms per intent by process, full speed", _breakdown(r.full), "", ""),
        (f"ms per intent by process, {r.offered_per_s:.0f}/s", _breakdown(r.paced), "", ""),
    ]


async def bench(quick: bool) -> list[tuple[str, str, str, str]]:
    """The benchmark at its full or quick size, as table rows."""
    result = await run_cpu_bench(
        INTENTS_QUICK if quick else INTENTS, SECONDS_QUICK if quick else SECONDS
    )
    return table(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.cpu")
    parser.add_argument("--quick", action="store_true", help="2,000 intents, 8 s at 100/s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)
    for row in asyncio.run(bench(args.quick)):
        print(" | ".join(cell for cell in row if cell))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
