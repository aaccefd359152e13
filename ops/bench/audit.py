"""`audit verify` throughput: replay and verify N signed events (`python -m ops.bench.audit`).

A fresh nats-server (mutual TLS, file storage) is filled with complete intent chains signed
with the real identities' keys, as the agents would write them: submitted (unsigned, as a
client), accepted, analyzed (with citations), approved, filled, posted (on a valid hash chain).
The audit then replays and verifies the six streams, per way of verifying signatures, cold (no
cache); then as a re-audit with the signature cache filled. Postgres is not part of this figure
(as with `--no-postgres`). Besides wall-clock events/s, each run's CPU per event is measured
(the event loop's thread and the verification workers apart), because these machines are shared:
`projected idle` is what that CPU would give on idle cores (the serial loop, or all the work
spread over every core, whichever binds first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js import JetStreamContext
from nats.js.api import PubAck

from agents.ledger.booking import Position, book_fill
from agents.ledger.chain import GENESIS_HASH, entry_hash
from bus import Credentials, Emit, Publisher, Signer, connect, provision
from bus.identity import CertPaths
from contracts import (
    Analysis,
    Citation,
    Envelope,
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    LedgerPosted,
    MarketTick,
    OrderFilled,
    Recommendation,
    RiskApproved,
    TradeIntent,
)
from contracts import subjects as s
from ops.audit.signatures import Parallelism
from ops.audit.verify import AuditOptions, run_audit
from ops.stack.natsd import scratch_server

TARGET_EVENTS_PER_S = 20_000
EVENTS_PER_INTENT = 6
PUBLISH_WINDOW = 2000
SYMBOLS = (("AAPL", Decimal("190.00")), ("MSFT", Decimal("420.00")), ("BTC-USD", Decimal("65000")))


@dataclass(frozen=True)
class AuditRun:
    """One timed `audit verify` replay, with the CPU it used."""

    mode: str
    events: int
    seconds: float
    main_cpu_s: float
    """CPU of the event loop's thread: reading, parsing, checking (serial)."""
    pool_cpu_s: float
    """CPU of the verification workers (threads or processes)."""
    ok: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU per event, all threads and processes, microseconds."""
        return (self.main_cpu_s + self.pool_cpu_s) / max(self.events, 1) * 1e6

    def projected(self, cpus: int) -> float:
        """Events/s on `cpus` idle cores: the serial loop, or all the CPU spread over cores."""
        main = self.main_cpu_s / max(self.events, 1)
        total = self.cpu_us / 1e6
        return min(1 / main if main else float("inf"), cpus / total if total else float("inf"))


@dataclass(frozen=True)
class AuditBenchResult:
    events: int
    intents: int
    cpus: int
    verify_us: float
    """One Ed25519 verification on this machine, single thread, microseconds."""
    load: float
    """The machine's 1-minute load average when the runs ended (other work shares the CPUs)."""
    runs: tuple[AuditRun, ...]

    def median(self, mode: str) -> AuditRun:
        mine = sorted((r for r in self.runs if r.mode == mode), key=lambda r: r.rate)
        return mine[len(mine) // 2]

    @property
    def modes(self) -> list[str]:
        return list(dict.fromkeys(r.mode for r in self.runs))

    @property
    def best_cold(self) -> AuditRun:
        cold = [self.median(m) for m in self.modes if "cold" in m]
        return max(cold, key=lambda r: r.rate)

    @property
    def warm(self) -> AuditRun:
        return self.median(REAUDIT)

    def render(self) -> str:
        lines = [
            f"audit verify: {self.events:,} events ({self.intents:,} intents), {self.cpus} CPUs, "
            f"load {self.load:.1f}, Ed25519 verify {self.verify_us:.0f} us (one thread)",
            f"  {'mode (median of runs)':<26} {'events/s':>9}  {'CPU us/event':>12}  "
            f"{'projected idle':>14}",
        ]
        for mode in self.modes:
            run = self.median(mode)
            lines.append(
                f"  {mode:<26} {run.rate:>9,.0f}  {run.cpu_us:>12.0f}  "
                f"{run.projected(self.cpus):>14,.0f}" + ("" if run.ok else "  REPORT NOT CLEAN")
            )
        lines.append(
            f"  target >= {TARGET_EVENTS_PER_S:,}/s: cold {self.best_cold.rate:,.0f}/s "
            f"({self.best_cold.mode}), re-audit {self.warm.rate:,.0f}/s"
        )
        return "\n".join(lines)


REAUDIT = "processes, cached re-audit"


def measure_verify_us(samples: int = 2000) -> float:
    """Return the cost of one Ed25519 verification here, in microseconds."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = b"order.filled.AAPL\n" + b"x" * 900
    signature = key.sign(message)
    started = time.perf_counter()
    for _ in range(samples):
        public.verify(signature, message)
    return (time.perf_counter() - started) / samples * 1e6


def chains(intents: int) -> Iterator[tuple[str, bytes] | Emit]:
    """Yield each intent's submission (raw bytes) and its five agent events, chain by chain.

    The submissions are assumed to land at SUBMISSIONS sequences 1, 2, ... (a fresh store)."""
    prev, positions = GENESIS_HASH, dict[str, Position]()
    for n in range(intents):
        symbol, price = SYMBOLS[n % len(SYMBOLS)]
        iid = uuid.uuid4()
        quantity = Decimal("0.5") if symbol == "BTC-USD" else Decimal(10 + n % 7)
        side = "buy" if n % 3 else "sell"
        body = {"intent_id": str(iid), "account": "paper-1", "symbol": symbol, "side": side,
                "quantity": str(quantity), "strategy": "bench",
                "rationale": "rebalance toward the model portfolio"}  # fmt: skip
        yield (s.of(s.INTENT_SUBMITTED, symbol), json.dumps(body).encode())
        intent = TradeIntent.model_validate(body)
        accepted = IntentAccepted.derive(
            intent_id=iid, producer=Identity.INGESTOR, intent=intent,
            reference_price=price, reference_price_ts=datetime.now(UTC), submission_seq=n + 1,
        )  # fmt: skip
        analysis = Analysis(
            recommendation=Recommendation.APPROVE,
            confidence=0.82,
            rationale="Within the position and notional limits of the risk policy; no "
            "instruction-like text in the rationale; liquid instrument in market hours.",
            citations=(
                Citation(source="risk-limits-policy.md", section="Position limits", score=0.71),
                Citation(source="trading-runbook.md", section="Order review", score=0.64),
            ),
            model="offline-reviewer",
        )
        analyzed = IntentAnalyzed.derive(
            intent_id=iid, producer=Identity.ANALYST, causation_id=accepted.event_id,
            intent=intent, reference_price=price, reference_price_ts=accepted.reference_price_ts,
            analysis=analysis,
        )  # fmt: skip
        approved = RiskApproved.derive(
            intent_id=iid, producer=Identity.RISK, causation_id=analyzed.event_id, intent=intent,
            reference_price=price, notional_usd=price * quantity,
        )  # fmt: skip
        filled = OrderFilled.derive(
            intent_id=iid, producer=Identity.EXECUTOR, causation_id=approved.event_id,
            intent=intent, order_id=uuid.uuid4(), fill_price=price, fill_quantity=quantity,
            fee=Decimal("0.19"), broker="paper",
        )  # fmt: skip
        booking = book_fill(positions.get(symbol), filled)
        positions[symbol] = booking.position
        digest = entry_hash(prev, n + 1, iid, "paper-1", booking.lines)
        posted = LedgerPosted.derive(
            intent_id=iid, producer=Identity.LEDGER, causation_id=filled.event_id,
            account="paper-1", journal_seq=n + 1, lines=booking.lines, entry_hash=digest,
            prev_hash=prev,
        )  # fmt: skip
        prev = digest
        for subject, event in (
            (s.intent_event(s.INTENT_ACCEPTED, symbol, iid), accepted),
            (s.intent_event(s.INTENT_ANALYZED, symbol, iid), analyzed),
            (s.intent_event(s.RISK_APPROVED, symbol, iid), approved),
            (s.intent_event(s.ORDER_FILLED, symbol, iid), filled),
            (s.intent_event(s.LEDGER_POSTED, "paper-1", iid), posted),
        ):
            yield Emit(subject, event)


async def fill_streams(url: str, certs_dir: Path, intents: int) -> None:
    """Publish `intents` complete chains, each event signed by its producer's key.

    A tick of every symbol goes first (the audit compares each approval with MARKET). Chains go
    in windows of `PUBLISH_WINDOW` events, stage by stage: a stage is published only once the
    stage before it is stored, so no effect is stored before its cause (which the audit names).
    """
    nc = await connect(url, Credentials(Identity.OPS, certs_dir))
    try:
        js = nc.jetstream()
        await provision(js)
        publishers = {
            identity: Publisher(
                js, Signer.from_file(identity, CertPaths(certs_dir).signing_key(identity))
            )
            for identity in (
                Identity.INGESTOR, Identity.ANALYST, Identity.RISK, Identity.EXECUTOR,
                Identity.LEDGER,
            )
        }  # fmt: skip
        for symbol, price in SYMBOLS:
            tick = MarketTick(event_id=uuid.uuid4(), producer=Identity.INGESTOR, symbol=symbol,
                              price=price, observed_at=datetime.now(UTC))  # fmt: skip
            await (
                await publishers[Identity.INGESTOR].start(Emit(s.of(s.MARKET_TICK, symbol), tick))
            )
        stages: list[list[tuple[str, bytes] | Emit]] = [[] for _ in range(EVENTS_PER_INTENT)]
        for n, item in enumerate(chains(intents)):
            stages[n % len(stages)].append(item)
            if sum(map(len, stages)) >= PUBLISH_WINDOW and n % len(stages) == len(stages) - 1:
                await _publish_stages(js, publishers, stages)
                stages = [[] for _ in stages]
        await _publish_stages(js, publishers, stages)
    finally:
        await nc.close()


async def _publish_stages(
    js: JetStreamContext,
    publishers: dict[Identity, Publisher],
    stages: list[list[tuple[str, bytes] | Emit]],
) -> None:
    for stage in stages:
        pending: list[asyncio.Future[PubAck]] = []
        for item in stage:
            if isinstance(item, Emit):
                event: Envelope = item.event
                pending.append(await publishers[event.producer].start(item))
            else:
                pending.append(await js.publish_async(item[0], item[1]))
        await asyncio.gather(*pending)


async def _timed(url: str, certs_dir: Path, mode: str, options: AuditOptions) -> AuditRun:
    nc = await connect(url, Credentials(Identity.OPS, certs_dir))
    try:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        process, thread = time.process_time(), time.thread_time()
        started = time.perf_counter()
        report = await run_audit(nc, certs_dir, options)
        seconds = time.perf_counter() - started
        main = time.thread_time() - thread
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pool = (time.process_time() - process - main) + (
            after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        )
    finally:
        await nc.close()
    return AuditRun(mode, report.events, seconds, main, pool, report.ok and not report.warnings)


async def run_audit_bench(events: int, rounds: int = 3) -> AuditBenchResult:
    """Fill a fresh server with about `events` signed events; time `audit verify` on them.

    Each way of verifying runs `rounds` times (alternating); then, with the signature cache,
    one run fills it and `rounds` re-audits use it.
    """
    intents = max(1, events // EVENTS_PER_INTENT)
    async with scratch_server("tradeops-bench-audit-") as (server, paths):
        layout = server.layout
        url, certs = layout.url, paths.certs_dir
        await fill_streams(url, certs, intents)
        runs: list[AuditRun] = []
        for _ in range(rounds):
            for kind in (Parallelism.PROCESSES, Parallelism.THREADS, Parallelism.NONE):
                options = AuditOptions(parallelism=kind)
                runs.append(await _timed(url, certs, f"{kind}, cold", options))
        cached = AuditOptions(
            cache_path=paths.certs_dir.parent / "audit" / "verified-signatures.bin"
        )
        await _timed(url, certs, "processes, filling the cache", cached)
        for _ in range(rounds):
            runs.append(await _timed(url, certs, REAUDIT, cached))
    return AuditBenchResult(
        events=intents * EVENTS_PER_INTENT,
        intents=intents,
        cpus=os.cpu_count() or 1,
        verify_us=measure_verify_us(),
        load=os.getloadavg()[0],
        runs=tuple(runs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.audit", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("asyncio", "tradeops.bus"):  # closing TLS connections is not a finding here
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    result = asyncio.run(run_audit_bench(args.events, args.rounds))
    print(result.render())
    return 0 if all(r.ok for r in result.runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
