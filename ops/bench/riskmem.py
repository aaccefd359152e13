"""The risk gate's resident memory after many decided intents: at its configured bound, and at a
small one as the baseline.

The gate keeps what it decided in memory, bounded by `[risk]` (`agents/risk/config.py`
`RiskMemory`): the newest `remembered_events` decisions whole (to re-publish on a redelivery),
older ones by intent id up to `remembered_decisions`. Before the bound it grew about 31 MiB per
10,000 intents. Here the whole pipeline decides them, as in production: five agent processes,
nats-server with mutual TLS and file storage, Postgres, the analyst with MiniLM retrieval (the
gate only decides intents the ingestor accepted and the analyst signed, so nothing is injected
past them). The universe is open (`ops.stack.scratch`): three rich accounts, two 24/7 symbols,
small alternating buys and sells, so that limits do not reject what is measured.

Each configuration gets a stack of its own, run one after the other:

1. the stack is started with that `[risk]` section and `VmRSS` / `VmHWM` of the gate's process
   are read from `/proc/<pid>/status` once every agent is ready;
2. intents are submitted, at most `WINDOW` of them undecided at a time, until the next
   checkpoint (a tenth, half and all of the run);
3. at a checkpoint submitting pauses until every intent is decided (`risk.approved` or
   `risk.rejected`) and every approval's order outcome has reached the ORDERS stream (the gate
   books it into its exposure), then, after `SETTLE_S`, the memory is read again.

A run fails (FAIL) when an intent is dead-lettered instead of decided, or when the gate's process
was restarted (its memory would be a new process's).

Run alone: `python -m ops.bench.riskmem [--quick | --intents N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from agents.risk.config import RiskMemory
from agents.settings import Settings, load_settings
from bus import Credentials, connect
from contracts import Identity, RiskRejected, parse
from contracts import subjects as s
from ops.bench.procmem import ProcMemory, read_memory
from ops.config import Renderer
from ops.stack.embedded import EmbeddedStack
from ops.stack.scratch import OPEN_CASH_USD, OPEN_LIMITS, OPEN_PRICES, write_scratch_config

INTENTS: Final = 100_000
INTENTS_QUICK: Final = 10_000
CHECKPOINTS: Final = (0.1, 0.5, 1.0)
"""Where memory is read, as shares of the run (10k, 50k and 100k of a full run)."""
WINDOW: Final = 2_000
"""Intents submitted but not yet decided, at most: the pipeline stays busy, its backlog small."""
CHUNK: Final = 500
"""Intents published before their publish acks are awaited."""
SETTLE_S: Final = 1.0
"""Pause at a checkpoint, everything decided and booked, before the memory is read."""
STALL_S: Final = 120.0
"""How long the pipeline may decide nothing before the run gives up."""
BASELINE: Final = RiskMemory(remembered_decisions=1_000, remembered_events=1_000)
"""The small bound the configured one is compared with (`remembered_decisions`' minimum)."""
ACCOUNTS: Final = ("paper-1", "paper-2", "paper-3")
SYMBOLS: Final = tuple(OPEN_PRICES)
QUANTITIES: Final = ("0.01", "0.02", "0.05")
# -- the load --------------------------------------------------------------------------------------


def intent_terms(n: int) -> tuple[str, str, str, str]:
    """Return (account, symbol, side, quantity) of the n-th intent of a run.

    Every six consecutive intents touch each account's line in each symbol once; on one line the
    intents alternate a buy and a sell of the same quantity, so its position stays within one
    order of flat however long the run, and no position or notional limit is approached.
    """
    account = ACCOUNTS[n % len(ACCOUNTS)]
    symbol = SYMBOLS[(n // len(ACCOUNTS)) % len(SYMBOLS)]
    k = n // (len(ACCOUNTS) * len(SYMBOLS))  # the how-many-th intent on its line
    side = "buy" if k % 2 == 0 else "sell"
    quantity = QUANTITIES[(k // 2) % len(QUANTITIES)]
    return account, symbol, side, quantity


def _submission(n: int) -> tuple[str, str, bytes]:
    account, symbol, side, quantity = intent_terms(n)
    iid = str(uuid.uuid4())
    body = (
        f'{{"intent_id": "{iid}", "account": "{account}", "symbol": "{symbol}", '
        f'"side": "{side}", "quantity": "{quantity}"}}'
    )
    return iid, s.of(s.INTENT_SUBMITTED, symbol), body.encode()


@dataclass
class DecisionWatch:
    """Follows the submitted intents to their decision and, once approved, their order outcome."""

    undecided: set[str] = field(default_factory=set)
    unbooked: set[str] = field(default_factory=set)
    """Approved intents whose fill or executor rejection (which the gate books) is not stored."""
    early: set[str] = field(default_factory=set)
    """Outcomes seen before their approval was (two publishers, no order between them)."""
    approved: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    dead_lettered: int = 0
    decided: int = 0
    """Intents that left `undecided`: approved, rejected or dead-lettered."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def _resolve(self, iid: str) -> bool:
        if iid not in self.undecided:
            return False  # a redelivery's second publish, or not ours
        self.undecided.remove(iid)
        self.decided += 1
        self.progress.set()
        return True

    async def on_approved(self, msg: Msg) -> None:
        iid = s.last_token(msg.subject)
        if self._resolve(iid):
            self.approved += 1
            if iid in self.early:
                self.early.remove(iid)
            else:
                self.unbooked.add(iid)

    async def on_rejected(self, msg: Msg) -> None:
        if self._resolve(s.last_token(msg.subject)):
            self.rejected += 1
            self.reasons.update(str(r) for r in parse(RiskRejected, msg.data).reasons)

    async def on_outcome(self, msg: Msg) -> None:
        iid = s.last_token(msg.subject)
        if iid in self.unbooked:
            self.unbooked.remove(iid)
            self.progress.set()
        else:
            self.early.add(iid)

    async def on_dead_letter(self, msg: Msg) -> None:
        if self._resolve(s.last_token(msg.subject)):
            self.dead_lettered += 1

    async def subscribe(self, nc: NATS) -> None:
        await nc.subscribe(s.intent_events(s.RISK_APPROVED), cb=self.on_approved)
        await nc.subscribe(s.intent_events(s.RISK_REJECTED), cb=self.on_rejected)
        await nc.subscribe(s.intent_events(s.ORDER_FILLED), cb=self.on_outcome)
        await nc.subscribe(s.intent_events(s.ORDER_REJECTED), cb=self.on_outcome)
        await nc.subscribe(f"{s.DLQ}.*.*", cb=self.on_dead_letter)

    async def until(self, done: Callable[[], bool], what: str) -> None:
        """Wait until `done()`; TimeoutError when nothing is decided for `STALL_S`."""
        while not done():
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), timeout=STALL_S)
            except TimeoutError:
                raise TimeoutError(
                    f"risk memory bench: no decision for {STALL_S:g}s waiting for {what} "
                    f"({self.decided:,} decided, {len(self.undecided):,} undecided)"
                ) from None

    async def booked(self) -> None:
        """Wait until every approval's outcome was stored, `STALL_S` at most (what is still
        missing then is reported as `MemoryRun.unbooked`)."""
        deadline = time.monotonic() + STALL_S
        while self.unbooked and (left_s := deadline - time.monotonic()) > 0:
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), timeout=left_s)


# -- one run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The gate's memory once `decided` intents were decided."""

    decided: int
    memory: ProcMemory
    seconds: float
    """Since the first intent was submitted."""


@dataclass(frozen=True)
class MemoryRun:
    """One configuration's run on a stack of its own."""

    memory: RiskMemory
    ready: ProcMemory
    """Once every agent was ready, before any intent."""
    checkpoints: tuple[Checkpoint, ...]
    approved: int
    rejected: int
    reasons: dict[str, int]
    dead_lettered: int
    unbooked: int
    """Approved intents whose order outcome was not seen by the last checkpoint."""
    risk_restarts: int

    @property
    def last(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def rate_per_s(self) -> float:
        return self.last.decided / self.last.seconds

    def at(self, decided: int) -> Checkpoint:
        return next(c for c in self.checkpoints if c.decided == decided)


def checkpoints(total: int) -> tuple[int, ...]:
    """Return the decided counts at which memory is read in a run of `total` intents."""
    return tuple(sorted({max(1, round(total * share)) for share in CHECKPOINTS}))


def with_risk_memory(config: Path, memory: RiskMemory) -> None:
    """Add a `[risk]` section to a scratch `tradeops.toml`, through the same TOML writer."""
    doc = tomllib.loads(config.read_text())
    doc["risk"] = memory.model_dump(mode="json")
    config.write_text("\n".join(Renderer(docs=False).table(Settings, doc)) + "\n")


@asynccontextmanager
async def memory_stack(memory: RiskMemory) -> AsyncIterator[EmbeddedStack]:
    """An open-universe embedded stack whose risk gate remembers as `memory` says."""
    base = Path(tempfile.mkdtemp(prefix="tradeops-bench-riskmem-"))
    config = write_scratch_config(
        base,
        accounts=dict.fromkeys(ACCOUNTS, OPEN_CASH_USD),
        prices=OPEN_PRICES,
        limits=OPEN_LIMITS,
    )
    with_risk_memory(config, memory)
    try:
        settings = load_settings(base)
        if settings.risk != memory:  # the gate reads the same file
            raise ValueError(f"[risk] loaded as {settings.risk}, expected {memory}")
        async with EmbeddedStack(settings).running() as stack:
            yield stack
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _risk_pid(stack: EmbeddedStack) -> int:
    proc = stack.components[str(Identity.RISK)].proc
    if proc is None or proc.returncode is not None:
        raise RuntimeError("the risk gate is not running")
    return proc.pid


async def _drive(client: NATS, watch: DecisionWatch, pid: int, total: int) -> list[Checkpoint]:
    js = client.jetstream()
    marks: list[Checkpoint] = []
    submitted = 0
    started = time.perf_counter()
    for mark in checkpoints(total):
        while submitted < mark:
            await watch.until(lambda: len(watch.undecided) <= WINDOW - CHUNK, "room in the window")
            acks = []
            for n in range(submitted, min(mark, submitted + CHUNK)):
                iid, subject, payload = _submission(n)
                watch.undecided.add(iid)
                acks.append(await js.publish_async(subject, payload))
            await asyncio.gather(*acks)
            submitted += len(acks)
        await watch.until(lambda: not watch.undecided, f"the first {mark:,} decisions")
        elapsed = time.perf_counter() - started
        await watch.booked()
        await asyncio.sleep(SETTLE_S)
        marks.append(Checkpoint(watch.decided, read_memory(pid), elapsed))
    return marks


async def measure(stack: EmbeddedStack, memory: RiskMemory, total: int) -> MemoryRun:
    """Decide `total` intents through a running stack; read the gate's memory on the way."""
    certs = stack.settings.certs_dir
    client = await connect(stack.layout.url, Credentials(Identity.CLIENT, certs))
    ops = await connect(stack.layout.url, Credentials(Identity.OPS, certs))
    watch = DecisionWatch()
    try:
        await watch.subscribe(ops)
        pid = _risk_pid(stack)
        ready = read_memory(pid)
        await asyncio.sleep(1.0)  # first ticks: the gate needs a price to decide on
        marks = await _drive(client, watch, pid, total)
        same_process = _risk_pid(stack) == pid
    finally:
        await client.close()
        await ops.close()
    restarts = stack.components[str(Identity.RISK)].restarts
    return MemoryRun(
        memory=memory,
        ready=ready,
        checkpoints=tuple(marks),
        approved=watch.approved,
        rejected=watch.rejected,
        reasons=dict(watch.reasons),
        dead_lettered=watch.dead_lettered,
        unbooked=len(watch.unbooked),
        risk_restarts=restarts if same_process else max(restarts, 1),
    )


@dataclass(frozen=True)
class RiskMemResult:
    """The configured bound's run and the small bound's, same load."""

    configured: MemoryRun
    baseline: MemoryRun


async def run_riskmem_bench(
    total: int, configured: RiskMemory | None = None, baseline: RiskMemory = BASELINE
) -> RiskMemResult:
    """Run `total` intents through a stack at each bound, one stack after the other."""
    runs = []
    for memory in (configured or RiskMemory(), baseline):
        async with memory_stack(memory) as stack:
            runs.append(await measure(stack, memory, total))
    return RiskMemResult(configured=runs[0], baseline=runs[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.riskmem",
        description="The risk gate's resident memory after many decided intents.",
    )
    parser.add_argument("--intents", type=int, default=INTENTS)
    parser.add_argument("--quick", action="store_true", help=f"{INTENTS_QUICK:,} intents")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)
    result = asyncio.run(run_riskmem_bench(INTENTS_QUICK if args.quick else args.intents))
    from ops.bench.riskmem_table import table  # noqa: PLC0415 - the table reads this module's types

    rows = table(result)
    width = max(len(r[0]) for r in rows)
    for case, value, target, verdict in rows:
        print(f"{case.ljust(width)} | {value}" + (f" | {target} {verdict}" if verdict else ""))
    return 1 if any(r[3] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
