"""Postgres I/O of the ledger: append postings to the chained journal, keep positions and cash.

Every append runs in one transaction that first takes the chain's advisory lock, so appends
from any number of replicas are serialized and the chain stays linear. Under the lock a batch:
looks up the fills already booked (a redelivery gets the stored posting back, never a second
one), loads the positions it touches, books each fill in batch order (`booking.book_fill`),
reserves journal sequence numbers, hashes the postings onto the chain's tip and writes journal,
lines, positions and cash with one statement each.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from agents.common.config import Account
from agents.ledger.booking import Position, book_fill, cash_changes, opening_lines
from agents.ledger.chain import GENESIS_HASH, POSTINGS_SQL, entry_hash, lines_of
from agents.ledger.errors import BookingError, ChainConflict, LedgerConfigError
from contracts import Identity, JournalLine, LedgerPosted, OrderFilled
from contracts.types import ACCOUNT_PATTERN

CHAIN_LOCK_KEY = 0x74726F5F6A726E01
"""Advisory lock id serializing appends to the journal (`tro_jrn` + 1)."""
OPENING_NAMESPACE = uuid.UUID("0b5f2d7e-6a43-4c1e-9d0a-3f6f1c2b8e57")
OPENING, FILL = "opening", "fill"
_ACCOUNT_RE = re.compile(ACCOUNT_PATTERN)


def opening_intent_id(account: str) -> uuid.UUID:
    """Return the fixed id of an account's opening posting."""
    return uuid.uuid5(OPENING_NAMESPACE, f"opening:{account}")


async def create_pool(database_url: str, *, max_size: int = 4) -> Any:
    """Open a connection pool; broken connections are replaced on their next use."""
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        command_timeout=30,
        max_inactive_connection_lifetime=60,
    )


@dataclass(frozen=True)
class NewPosting:
    """A posting about to be appended."""

    kind: str
    intent_id: uuid.UUID
    fill_event_id: uuid.UUID | None
    account: str
    symbol: str | None
    ts: datetime
    lines: tuple[JournalLine, ...]


@dataclass(frozen=True)
class StoredPosting:
    """A posting as the journal holds it."""

    journal_seq: int
    kind: str
    intent_id: uuid.UUID
    fill_event_id: uuid.UUID | None
    account: str
    symbol: str | None
    ts: datetime
    booked_at: datetime
    prev_hash: str
    entry_hash: str
    lines: tuple[JournalLine, ...]

    @classmethod
    def from_row(cls, row: Any) -> StoredPosting:
        return cls(
            journal_seq=row["journal_seq"],
            kind=row["kind"],
            intent_id=row["intent_id"],
            fill_event_id=row["fill_event_id"],
            account=row["account"],
            symbol=row["symbol"],
            ts=row["ts"],
            booked_at=row["booked_at"],
            prev_hash=row["prev_hash"],
            entry_hash=row["entry_hash"],
            lines=lines_of(row),
        )

    def event(self) -> LedgerPosted:
        """Return the `LedgerPosted` of this posting (the same event id every time)."""
        return LedgerPosted.derive(
            intent_id=self.intent_id,
            producer=Identity.LEDGER,
            causation_id=self.fill_event_id,
            ts=self.booked_at,
            account=self.account,
            journal_seq=self.journal_seq,
            lines=self.lines,
            entry_hash=self.entry_hash,
            prev_hash=self.prev_hash,
        )


BookResult = LedgerPosted | BookingError
"""Per fill: its posting's event (new or already booked), or why it cannot be booked."""


async def book_fills(
    conn: Any, fills: Sequence[OrderFilled], *, now: datetime | None = None
) -> list[BookResult]:
    """Book `fills` in order in ONE transaction; return one result per fill."""
    booked_at = now or datetime.now(UTC)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK_KEY)
        stored = await load_postings(conn, [f.intent_id for f in fills])
        fresh = [f for f in fills if f.intent_id not in stored]
        positions = await _load_positions(
            conn, {(f.intent.account, f.intent.symbol) for f in fresh}
        )
        results: list[BookingError | uuid.UUID] = []
        pending: list[NewPosting] = []
        pending_ids: set[uuid.UUID] = set()
        touched: dict[tuple[str, str], int] = {}  # position -> index of its last posting
        for fill in fills:
            key = (fill.intent.account, fill.intent.symbol)
            if fill.intent_id in stored or fill.intent_id in pending_ids:
                results.append(fill.intent_id)
                continue
            try:
                booking = book_fill(positions.get(key), fill)
            except BookingError as exc:
                results.append(exc)
                continue
            positions[key] = booking.position
            touched[key] = len(pending)
            pending_ids.add(fill.intent_id)
            pending.append(
                NewPosting(FILL, fill.intent_id, fill.event_id, *key, fill.ts, booking.lines)
            )
            results.append(fill.intent_id)
        appended = await _append(conn, pending, booked_at)
        await _save_positions(
            conn,
            [(positions[key], appended[i].journal_seq) for key, i in touched.items()],
            booked_at,
        )
        await _apply_cash(conn, appended, booked_at)
    stored |= {posting.intent_id: posting for posting in appended}
    return [r if isinstance(r, BookingError) else stored[r].event() for r in results]


async def seed_accounts(
    conn: Any, accounts: Iterable[Account], *, now: datetime | None = None
) -> list[StoredPosting]:
    """Post each account's starting cash once (idempotent); return the postings made now."""
    booked_at = now or datetime.now(UTC)
    wanted = [a for a in accounts if a.starting_cash_usd != 0]
    for account in wanted:
        if not _ACCOUNT_RE.fullmatch(account.name):
            raise LedgerConfigError(
                f"account name {account.name!r} cannot name ledger accounts; use letters, "
                "digits, '-' and '_' (e.g. paper-1)"
            )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK_KEY)
        done = await load_postings(conn, [opening_intent_id(a.name) for a in wanted])
        postings = [
            NewPosting(
                OPENING,
                opening_intent_id(a.name),
                None,
                a.name,
                None,
                booked_at,
                opening_lines(a.name, a.starting_cash_usd),
            )
            for a in wanted
            if opening_intent_id(a.name) not in done
        ]
        appended = await _append(conn, postings, booked_at)
        await _apply_cash(conn, appended, booked_at)
    return appended


async def load_postings(
    conn: Any, intent_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, StoredPosting]:
    """Return the stored postings of these intents."""
    if not intent_ids:
        return {}
    sql = POSTINGS_SQL.format(where="WHERE j.intent_id = ANY($1::uuid[])")
    rows = await conn.fetch(sql, list(set(intent_ids)))
    return {row["intent_id"]: StoredPosting.from_row(row) for row in rows}


async def _load_positions(conn: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Position]:
    if not keys:
        return {}
    accounts, symbols = zip(*sorted(keys), strict=True)
    rows = await conn.fetch(
        """
        SELECT p.account, p.symbol, p.currency, p.quantity, p.avg_cost, p.cost_basis,
               p.realized_pnl
        FROM positions p
        JOIN unnest($1::text[], $2::text[]) AS k(account, symbol) USING (account, symbol)
        """,
        list(accounts),
        list(symbols),
    )
    return {(r["account"], r["symbol"]): Position(**dict(r)) for r in rows}


async def _append(
    conn: Any, postings: Sequence[NewPosting], booked_at: datetime
) -> list[StoredPosting]:
    """Hash `postings` onto the chain's tip and insert them with their lines (lock held)."""
    if not postings:
        return []
    tip = await conn.fetchval("SELECT entry_hash FROM journal ORDER BY journal_seq DESC LIMIT 1")
    seqs = sorted(
        await conn.fetchval(
            "SELECT array_agg(nextval(pg_get_serial_sequence('journal', 'journal_seq'))) "
            "FROM generate_series(1, $1)",
            len(postings),
        )
    )
    prev = tip or GENESIS_HASH
    stored: list[StoredPosting] = []
    for posting, seq in zip(postings, seqs, strict=True):
        digest = entry_hash(prev, seq, posting.intent_id, posting.account, posting.lines)
        stored.append(
            StoredPosting(
                journal_seq=seq,
                kind=posting.kind,
                intent_id=posting.intent_id,
                fill_event_id=posting.fill_event_id,
                account=posting.account,
                symbol=posting.symbol,
                ts=posting.ts,
                booked_at=booked_at,
                prev_hash=prev,
                entry_hash=digest,
                lines=posting.lines,
            )
        )
        prev = digest
    inserted = await conn.fetch(
        """
        INSERT INTO journal (journal_seq, kind, intent_id, fill_event_id, account, symbol, ts,
                             booked_at, prev_hash, entry_hash)
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[], $5::text[],
                             $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[],
                             $10::text[])
        ON CONFLICT DO NOTHING
        RETURNING journal_seq
        """,
        *_columns(
            [
                (p.journal_seq, p.kind, p.intent_id, p.fill_event_id, p.account, p.symbol, p.ts,
                 p.booked_at, p.prev_hash, p.entry_hash)
                for p in stored
            ],
            10,
        ),
    )  # fmt: skip
    if len(inserted) != len(stored):
        raise ChainConflict(
            f"{len(stored) - len(inserted)} of {len(stored)} postings were already in the "
            "journal although the chain lock was held; is a writer bypassing the lock?"
        )
    # Binary COPY: the lines are most of the rows, and their sequence numbers are fresh.
    await conn.copy_records_to_table(
        "journal_lines",
        records=[
            (p.journal_seq, n, line.account, line.currency, line.amount)
            for p in stored
            for n, line in enumerate(p.lines, start=1)
        ],
        columns=["journal_seq", "line_no", "ledger_account", "currency", "amount"],
    )
    return stored


async def _save_positions(
    conn: Any, changed: Sequence[tuple[Position, int]], updated_at: datetime
) -> None:
    if not changed:
        return
    await conn.execute(
        """
        INSERT INTO positions (account, symbol, currency, quantity, avg_cost, cost_basis,
                               realized_pnl, last_journal_seq, updated_at)
        SELECT k.*, $9::timestamptz
        FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[],
                    $6::numeric[], $7::numeric[], $8::bigint[]) AS k
        ON CONFLICT (account, symbol) DO UPDATE SET
            currency = EXCLUDED.currency, quantity = EXCLUDED.quantity,
            avg_cost = EXCLUDED.avg_cost, cost_basis = EXCLUDED.cost_basis,
            realized_pnl = EXCLUDED.realized_pnl, last_journal_seq = EXCLUDED.last_journal_seq,
            updated_at = EXCLUDED.updated_at
        """,
        *_columns(
            [
                (p.account, p.symbol, p.currency, p.quantity, p.avg_cost, p.cost_basis,
                 p.realized_pnl, seq)
                for p, seq in changed
            ],
            8,
        ),
        updated_at,
    )  # fmt: skip


async def _apply_cash(conn: Any, postings: Sequence[StoredPosting], updated_at: datetime) -> None:
    deltas: dict[tuple[str, str], tuple[Decimal, int]] = {}
    for posting in postings:
        for key, change in cash_changes(posting.lines).items():
            total, _ = deltas.get(key, (Decimal(0), 0))
            deltas[key] = (total + change, posting.journal_seq)
    if not deltas:
        return
    await conn.execute(
        """
        INSERT INTO cash (account, currency, balance, last_journal_seq, updated_at)
        SELECT k.*, $5::timestamptz
        FROM unnest($1::text[], $2::text[], $3::numeric[], $4::bigint[]) AS k
        ON CONFLICT (account, currency) DO UPDATE SET
            balance = cash.balance + EXCLUDED.balance,
            last_journal_seq = EXCLUDED.last_journal_seq,
            updated_at = EXCLUDED.updated_at
        """,
        *_columns([(a, c, total, seq) for (a, c), (total, seq) in deltas.items()], 4),
        updated_at,
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column (for `unnest`)."""
    return [[row[i] for row in rows] for i in range(width)]
