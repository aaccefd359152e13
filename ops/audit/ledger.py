"""The ledger's side of the audit: its hash chain in Postgres and in LEDGER, and its balances.

- Postgres: `verify_chain` over the whole journal (every posting re-hashed onto its
  predecessor).
- LEDGER: each `ledger.posted` must be the posting Postgres holds at its `journal_seq` (same
  hashes, intent, account and lines), and the postings read in journal order must chain
  (`verify_entries`; the opening postings, which are not published, are taken from Postgres).
- Balances: the fills, in journal order, recomputed with `recompute_from_fills` from the
  opening cash, must give the `positions` and `cash` tables.

Postgres is read first, in one repeatable-read snapshot, then the streams: a posting newer than
the snapshot is in flight, not missing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise

import asyncpg

from agents.ledger.booking import AccountKind, Position, ledger_account
from agents.ledger.chain import (
    POSTINGS_SQL,
    ChainEntry,
    canonical_posting,
    lines_of,
    verify_chain,
    verify_entries,
)
from agents.ledger.queries import recompute_from_fills
from contracts import LedgerPosted, OrderFilled
from contracts import topology as t
from ops.audit.facts import Fact
from ops.audit.report import Check, Finding

CONNECT_TIMEOUT_S = 5.0
_JOURNAL_SEQ = re.compile(r"journal_seq (\d+)")


@dataclass(frozen=True)
class JournalRow:
    kind: str
    fill_event_id: uuid.UUID | None
    entry: ChainEntry


@dataclass
class LedgerSnapshot:
    """What Postgres holds, read in one snapshot (plus `verify_chain`'s findings)."""

    chain_problems: list[str]
    rows: dict[int, JournalRow]
    positions: dict[tuple[str, str], Position]
    cash: dict[tuple[str, str], Decimal]
    starting_cash: dict[str, Decimal] = field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return max(self.rows, default=0)


async def read_snapshot(database_url: str) -> LedgerSnapshot:
    """Verify the journal's chain in Postgres and read the journal, positions and cash."""
    conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    try:
        problems = await verify_chain(conn)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            journal = await conn.fetch(POSTINGS_SQL.format(where=""))
            positions = await conn.fetch(
                "SELECT account, symbol, currency, quantity, avg_cost, cost_basis, realized_pnl "
                "FROM positions"
            )
            cash = await conn.fetch("SELECT account, currency, balance FROM cash")
    finally:
        await conn.close()
    rows: dict[int, JournalRow] = {}
    starting: dict[str, Decimal] = {}
    for row in journal:
        lines = lines_of(row, validate=False)
        entry = ChainEntry(
            row["journal_seq"],
            row["intent_id"],
            row["account"],
            lines,
            row["prev_hash"],
            row["entry_hash"],
        )
        rows[entry.journal_seq] = JournalRow(row["kind"], row["fill_event_id"], entry)
        if row["kind"] == "opening":
            cash_leg = ledger_account(row["account"], AccountKind.CASH, "USD")
            paid = sum((ln.amount for ln in lines if ln.account == cash_leg), Decimal(0))
            starting[row["account"]] = starting.get(row["account"], Decimal(0)) + paid
    return LedgerSnapshot(
        chain_problems=problems,
        rows=rows,
        positions={(r["account"], r["symbol"]): Position(**dict(r)) for r in positions},
        cash={(r["account"], r["currency"]): r["balance"] for r in cash},
        starting_cash=starting,
    )


def _same_posting(a: ChainEntry, b: ChainEntry) -> str | None:
    if a.entry_hash != b.entry_hash or a.prev_hash != b.prev_hash:
        return "its hashes differ from the journal row's"
    if a.intent_id != b.intent_id or a.account != b.account:
        return "its intent or account differs from the journal row's"
    if canonical_posting(a.journal_seq, a.intent_id, a.account, a.lines) != canonical_posting(
        b.journal_seq, b.intent_id, b.account, b.lines
    ):
        return "its lines differ from the journal row's (altered after posting?)"
    return None


def check_postings(
    postings: Sequence[tuple[Fact, LedgerPosted]],
    snapshot: LedgerSnapshot | None,
    *,
    full: bool,
) -> tuple[list[Finding], list[Finding], list[str]]:
    """Return (discrepancies, warnings, notes) about the LEDGER stream's postings."""
    errors: list[Finding] = []
    warnings: list[Finding] = []
    notes: list[str] = []
    events: dict[int, tuple[Fact, ChainEntry]] = {}
    for fact, event in postings:
        entry = ChainEntry.from_event(event)
        seen = events.get(entry.journal_seq)
        if seen is not None and seen[1].entry_hash != entry.entry_hash:
            errors.append(
                _finding(fact, f"a second posting claims journal_seq {entry.journal_seq}")
            )
            continue
        events.setdefault(entry.journal_seq, (fact, entry))
    merged: dict[int, ChainEntry] = {seq: entry for seq, (_, entry) in events.items()}
    if snapshot is not None:
        for seq, (fact, entry) in sorted(events.items()):
            row = snapshot.rows.get(seq)
            if row is None:
                if seq <= snapshot.last_seq:
                    errors.append(_finding(fact, f"journal_seq {seq} is not in Postgres"))
                continue
            if (why := _same_posting(entry, row.entry)) is not None:
                errors.append(_finding(fact, f"journal_seq {seq}: {why}"))
        low = 1 if full else min(events, default=snapshot.last_seq + 1)
        for seq, row in sorted(snapshot.rows.items()):
            if seq < low or seq in events:
                continue
            merged[seq] = row.entry  # openings are never published; a fill's may be in flight
            if row.kind != "opening":
                warnings.append(
                    Finding(
                        Check.LEDGER_CHAIN,
                        f"journal_seq {seq} is booked in Postgres but its ledger.posted is not "
                        "in LEDGER (in flight?)",
                        stream="postgres",
                        intent_id=str(row.entry.intent_id),
                    )
                )
    by_seq = {seq: fact for seq, (fact, _) in events.items()}
    runs = _runs(sorted(merged))
    for run in runs:
        for problem in verify_entries([merged[s] for s in run], merged[run[0]].prev_hash):
            match = _JOURNAL_SEQ.match(problem)
            errors.append(_finding(by_seq.get(int(match[1])) if match else None, problem))
    if len(runs) > 1:
        gaps = [f"{a[-1] + 1}..{b[0] - 1}" for a, b in pairwise(runs)]
        notes.append(f"journal_seq {', '.join(gaps)} not in LEDGER (not compared)")
    return errors, warnings, notes


def _runs(seqs: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][-1] + 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return runs


def _finding(fact: Fact | None, what: str) -> Finding:
    if fact is None:
        return Finding(Check.LEDGER_CHAIN, what, stream=t.LEDGER)
    return Finding(Check.LEDGER_CHAIN, what, fact.stream, fact.seq, fact.intent_id)


def check_postgres_chain(snapshot: LedgerSnapshot) -> list[Finding]:
    """Return `verify_chain`'s findings, one per problem."""
    return [Finding(Check.LEDGER_CHAIN, p, stream="postgres") for p in snapshot.chain_problems]


def check_balances(fills: Iterable[OrderFilled], snapshot: LedgerSnapshot) -> list[Finding]:
    """Recompute positions and cash from the fills in journal order; compare with Postgres."""
    by_event = {f.event_id: f for f in fills}
    by_intent = {f.intent_id: f for f in by_event.values()}
    ordered: list[OrderFilled] = []
    found: list[Finding] = []
    for seq, row in sorted(snapshot.rows.items()):
        if row.kind != "fill":
            continue
        fill = by_event.get(row.fill_event_id) if row.fill_event_id else None
        fill = fill or by_intent.get(row.entry.intent_id)
        if fill is None:
            found.append(
                Finding(
                    Check.BALANCES,
                    f"journal_seq {seq} books a fill that ORDERS does not hold (or not signed "
                    "by the executor)",
                    stream="postgres",
                    intent_id=str(row.entry.intent_id),
                )
            )
            continue
        ordered.append(fill)
    book, balances = recompute_from_fills(ordered, snapshot.starting_cash)
    found += _compare_positions(book, snapshot.positions)
    found += _compare_cash(balances, snapshot.cash)
    return found


def _compare_positions(
    book: Mapping[tuple[str, str], Position], held: Mapping[tuple[str, str], Position]
) -> list[Finding]:
    found: list[Finding] = []
    for key in sorted(set(book) | set(held)):
        mine, theirs = book.get(key), held.get(key)
        for name in ("quantity", "avg_cost", "cost_basis", "realized_pnl"):
            want = getattr(mine, name) if mine else Decimal(0)
            have = getattr(theirs, name) if theirs else Decimal(0)
            if want != have:
                found.append(
                    Finding(
                        Check.BALANCES,
                        f"position {key[0]} {key[1]}: Postgres {name} is {have}, the fills "
                        f"give {want}",
                        stream="postgres",
                    )
                )
    return found


def _compare_cash(
    mine: Mapping[tuple[str, str], Decimal], theirs: Mapping[tuple[str, str], Decimal]
) -> list[Finding]:
    zero = Decimal(0)
    return [
        Finding(
            Check.BALANCES,
            f"cash {key[0]} {key[1]}: Postgres holds {theirs.get(key, zero)}, the fills give "
            f"{mine.get(key, zero)}",
            stream="postgres",
        )
        for key in sorted(set(mine) | set(theirs))
        if mine.get(key, zero) != theirs.get(key, zero)
    ]
