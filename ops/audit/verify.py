"""`audit verify`: replay the streams, check every signature, every chain, and the ledger.

Postgres snapshot (verify_chain, journal, positions, cash)
  -> replay SUBMISSIONS, INTENTS, RISK, ORDERS, LEDGER, DLQ, CONTROL (signatures verified in a pool
     while reading)
  -> provenance of each message (policy) -> trusted facts
  -> each intent's chain (chains.evaluate) -> halts -> each approval's price against MARKET at
     its time (market, reading MARKET once) -> the ledger (ledger.check_*)
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from nats.aio.client import Client as NATS

from agents.risk.config import Limits
from bus.replay import read_batches
from bus.signing import Verifier
from contracts import LedgerPosted, OrderFilled
from contracts import topology as t
from contracts.kinds import APPROVED, FILLED, POSTED, PURGED, RETRIED
from ops.audit.cache import VerifiedCache
from ops.audit.chains import Verdict, evaluate
from ops.audit.facts import Fact, Key, fact_of, join_submissions, purged_letters
from ops.audit.halts import judge_halts
from ops.audit.ledger import (
    LedgerSnapshot,
    check_balances,
    check_postgres_chain,
    check_postings,
    read_snapshot,
)
from ops.audit.market import Approval, judge_market, read_approval
from ops.audit.policy import judge_provenance
from ops.audit.report import AuditReport, Check
from ops.audit.signatures import Parallelism, SignatureChecker, make_executor
from ops.audit.window import ReplayWindow
from ops.dlq import first_message

AUDIT_STREAMS = (t.SUBMISSIONS, t.INTENTS, t.RISK, t.ORDERS, t.LEDGER, t.DLQ, t.CONTROL)
READ_BATCH = 1000


class Progress:
    """Receives the replay's progress (the CLI draws it; the default draws nothing)."""

    def start(self, total: int | None) -> None:
        """The replay reads about `total` messages (None when unknown)."""

    def advance(self, stream: str, count: int) -> None:
        """`count` more messages of `stream` were read."""


@dataclass(frozen=True)
class AuditOptions:
    window: ReplayWindow = field(default_factory=ReplayWindow)
    strict: bool = False
    database_url: str | None = None
    parallelism: Parallelism = Parallelism.PROCESSES
    workers: int | None = None
    cache_path: Path | None = None
    """Where verified signatures are remembered between audits (None: this run only)."""
    price_collar_pct: Decimal = Limits().price_collar_pct
    """The risk gate's collar (`[limits] price_collar_pct`): how far from the market an approved
    price may be (check `market`). Give the desk's `settings.limits.price_collar_pct`."""


async def _estimate(nc: NATS, window: ReplayWindow) -> int | None:
    if not window.full:
        return None
    total = 0
    for stream in (*AUDIT_STREAMS, t.MARKET):  # MARKET: read up to the last approval
        total += (await nc.jetstream().stream_info(stream)).state.messages
    return total


async def origin_time(nc: NATS, window: ReplayWindow) -> datetime | None:
    """When SUBMISSIONS #`from_seq` was stored (None: no such message yet, or no sequence given)."""
    if window.from_seq <= 1:
        return None
    first = await first_message(nc, t.SUBMISSIONS, start_seq=window.from_seq)
    return first.timestamp if first is not None else None


async def replay(
    nc: NATS,
    checker: SignatureChecker,
    window: ReplayWindow,
    progress: Progress,
    approvals: list[Approval] | None = None,
) -> list[Fact]:
    """Read every audited stream in the window; queue each signature as it is read; add each
    approval's price to `approvals`."""
    facts: list[Fact] = []
    origin = await origin_time(nc, window)
    for stream in AUDIT_STREAMS:
        where = window.read_args(stream, origin)
        async for batch in read_batches(nc, stream, batch=READ_BATCH, **where):
            for msg in batch:
                fact = fact_of(msg)
                facts.append(fact)
                if approvals is not None and fact.kind == APPROVED:
                    approvals.append(read_approval(fact, msg.data))
                await checker.add((stream, msg.seq), msg.subject, msg.data, msg.headers)
            progress.advance(stream, len(batch))
    return facts


def judge_chains(
    facts: list[Fact], retried: dict[int, list[Key]], window: ReplayWindow, report: AuditReport
) -> list[Verdict]:
    by_intent: dict[str, list[Fact]] = defaultdict(list)
    intent_of: dict[Key, str | None] = {}
    for fact in facts:
        intent_of[fact.key] = fact.intent_id
        if not fact.trusted:
            continue
        if fact.kind == PURGED:
            for letter in purged_letters(fact):
                if letter.intent_id is not None:
                    by_intent[letter.intent_id].append(letter)
        elif fact.intent_id is not None and fact.kind != RETRIED:
            by_intent[fact.intent_id].append(fact)
    verdicts: list[Verdict] = []
    for intent_id, mine in by_intent.items():
        verdict = evaluate(intent_id, mine, retried=retried, intent_of=intent_of, full=window.full)
        verdicts.append(verdict)
        report.outcomes[verdict.outcome] += 1
        for culprit, what in verdict.problems:
            where = {"stream": culprit.stream, "seq": culprit.seq} if culprit else {}
            report.error(Check.CHAIN, what, intent_id=intent_id, **where)
        if verdict.pending is not None:
            report.warn(Check.TERMINAL, f"pending: {verdict.pending}", intent_id=intent_id)
    return verdicts


def judge_ledger(
    facts: list[Fact], snapshot: LedgerSnapshot | None, window: ReplayWindow, report: AuditReport
) -> None:
    postings: list[tuple[Fact, LedgerPosted]] = []
    fills: list[OrderFilled] = []
    kinds = (POSTED, FILLED) if snapshot is not None and window.full else (POSTED,)
    for fact in facts:
        if not fact.trusted or fact.data is None or fact.kind not in kinds:
            continue
        try:
            if fact.kind == POSTED:
                postings.append((fact, LedgerPosted.model_validate_json(fact.data)))
            else:
                fills.append(OrderFilled.model_validate_json(fact.data))
        except ValueError as exc:
            report.error(Check.CHAIN, f"not a valid {fact.kind}: {exc}", stream=fact.stream,
                         seq=fact.seq, intent_id=fact.intent_id)  # fmt: skip
    errors, warnings, notes = check_postings(postings, snapshot, full=window.full)
    report.discrepancies += errors
    for finding in warnings:
        report.warn(finding.check, finding.what, stream=finding.stream, intent_id=finding.intent_id)
    report.notes += notes
    report.ledger["postings in LEDGER"] = len(postings)
    if snapshot is None:
        report.notes.append("no Postgres: the ledger was checked from the LEDGER stream only")
        return
    report.ledger["journal rows"] = len(snapshot.rows)
    report.discrepancies += check_postgres_chain(snapshot)
    if window.full:
        balances = check_balances(fills, snapshot)
        report.discrepancies += balances
        report.ledger["positions and cash"] = "match the fills" if not balances else "DIFFER"
    else:
        report.notes.append("positions and cash are recomputed only on a replay from the start")


async def run_audit(
    nc: NATS, certs_dir: Path, options: AuditOptions, progress: Progress | None = None
) -> AuditReport:
    """Run the whole audit as ops on `nc`; return what it found."""
    progress = progress or Progress()
    window = options.window
    report = AuditReport(window.describe(), strict=options.strict)
    started = time.perf_counter()
    snapshot = await read_snapshot(options.database_url) if options.database_url else None
    cache = VerifiedCache.open(certs_dir, options.cache_path)
    approvals: list[Approval] = []
    executor = make_executor(options.parallelism, certs_dir, options.workers)
    checker = SignatureChecker(
        Verifier.from_dir(certs_dir),
        cache,
        executor,
        process_pool=options.parallelism is Parallelism.PROCESSES,
    )
    try:
        progress.start(await _estimate(nc, window))
        facts = await replay(nc, checker, window, progress, approvals)
        results = await checker.finish()
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    try:
        cache.save()
    except OSError as exc:
        report.notes.append(f"verified signatures not remembered for the next audit: {exc}")
    report.events = len(facts)
    for fact in facts:
        report.by_stream[fact.stream] += 1
    retried = judge_provenance(facts, results, report)
    join_submissions(facts)  # an id-less submission takes the intent its acceptance names
    if checker.cached:
        report.signatures["valid (from cache)"] = checker.cached
        report.signatures["valid"] -= checker.cached
        if not report.signatures["valid"]:
            del report.signatures["valid"]
    judge_chains(facts, retried, window, report)
    judge_halts(facts, report)
    await judge_market(
        nc, approvals, options.price_collar_pct, report, lambda n: progress.advance(t.MARKET, n)
    )
    judge_ledger(facts, snapshot, window, report)
    report.seconds = time.perf_counter() - started
    return report
