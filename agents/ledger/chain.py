"""The journal's hash chain: each posting's hash covers the previous hash and the posting.

    entry_hash = sha256(prev_hash + canonical JSON of {journal_seq, intent_id, account, lines})

Lines are sorted (account, currency, amount) and amounts written without trailing zeros, so
the hash does not depend on line order or on the scale a decimal was stored with. The first
posting's `prev_hash` is 64 zeros. A `LedgerPosted` event carries exactly these fields, so the
chain can be checked from the stream as well as from Postgres (`ChainEntry.from_event`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agents.ledger.booking import imbalances
from contracts import JournalLine, LedgerPosted

GENESIS_HASH = "0" * 64


def canonical_amount(amount: Decimal) -> str:
    """Return `amount` as plain digits without trailing zeros (`1900.10` -> `1900.1`)."""
    if amount == 0:
        return "0"
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def canonical_posting(
    journal_seq: int, intent_id: uuid.UUID, account: str, lines: Iterable[JournalLine]
) -> str:
    """Return the canonical JSON the entry hash covers."""
    ordered = sorted(lines, key=lambda line: (line.account, line.currency, line.amount))
    doc = {
        "journal_seq": journal_seq,
        "intent_id": str(intent_id),
        "account": account,
        "lines": [
            {"account": ln.account, "currency": ln.currency, "amount": canonical_amount(ln.amount)}
            for ln in ordered
        ],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    prev_hash: str,
    journal_seq: int,
    intent_id: uuid.UUID,
    account: str,
    lines: Iterable[JournalLine],
) -> str:
    """Return the hash of one posting chained to `prev_hash`."""
    payload = prev_hash + canonical_posting(journal_seq, intent_id, account, lines)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainEntry:
    """What the chain covers of one posting, plus its stored hashes."""

    journal_seq: int
    intent_id: uuid.UUID
    account: str
    lines: tuple[JournalLine, ...]
    prev_hash: str
    entry_hash: str

    @classmethod
    def from_event(cls, event: LedgerPosted) -> ChainEntry:
        return cls(
            event.journal_seq,
            event.intent_id,
            event.account,
            event.lines,
            event.prev_hash,
            event.entry_hash,
        )


class ChainVerifier:
    """Checks postings fed in journal order; `problems` lists what is wrong so far."""

    def __init__(self, first_prev_hash: str = GENESIS_HASH) -> None:
        self.problems: list[str] = []
        self._expected_prev = first_prev_hash
        self._previous_seq: int | None = None

    def feed(self, entry: ChainEntry) -> None:
        """Check one posting against its predecessor and its own content."""
        where, previous = f"journal_seq {entry.journal_seq}", self._previous_seq
        if previous is not None and entry.journal_seq <= previous:
            self.problems.append(f"{where}: out of order after journal_seq {previous}")
        if entry.prev_hash != self._expected_prev:
            after = f"journal_seq {previous}" if previous is not None else "the genesis"
            self.problems.append(
                f"{where}: prev_hash {entry.prev_hash[:12]}… does not match the entry_hash of "
                f"{after} ({self._expected_prev[:12]}…): a posting was removed, inserted or "
                "rehashed"
            )
        recomputed = entry_hash(
            entry.prev_hash, entry.journal_seq, entry.intent_id, entry.account, entry.lines
        )
        if recomputed != entry.entry_hash:
            self.problems.append(
                f"{where}: entry_hash {entry.entry_hash[:12]}… does not match its content "
                f"(recomputed {recomputed[:12]}…): the posting or its lines were altered"
            )
        if not entry.lines:
            self.problems.append(f"{where}: has no lines")
        for currency, total in sorted(imbalances(entry.lines).items()):
            self.problems.append(f"{where}: lines do not balance in {currency} (sum {total})")
        self._expected_prev, self._previous_seq = entry.entry_hash, entry.journal_seq


def verify_entries(entries: Iterable[ChainEntry], first_prev_hash: str = GENESIS_HASH) -> list[str]:
    """Return the problems of a run of postings in journal order (empty when the chain holds)."""
    verifier = ChainVerifier(first_prev_hash)
    for entry in entries:
        verifier.feed(entry)
    return verifier.problems


POSTINGS_SQL = """
SELECT j.journal_seq, j.kind, j.intent_id, j.fill_event_id, j.account, j.symbol, j.ts,
       j.booked_at, j.prev_hash, j.entry_hash,
       array_remove(array_agg(l.ledger_account ORDER BY l.line_no), NULL) AS line_accounts,
       array_remove(array_agg(l.currency ORDER BY l.line_no), NULL) AS line_currencies,
       array_remove(array_agg(l.amount ORDER BY l.line_no), NULL) AS line_amounts
FROM journal j
LEFT JOIN journal_lines l ON l.journal_seq = j.journal_seq
{where}
GROUP BY j.journal_seq
ORDER BY j.journal_seq
"""
"""Every posting with its lines, in journal order; `{where}` filters the journal rows."""


def lines_of(row: Any, *, validate: bool = True) -> tuple[JournalLine, ...]:
    """Return the journal lines of a row selected by `POSTINGS_SQL`.

    `validate=False` keeps whatever Postgres holds (for verification, where a tampered amount
    must be reported, not refused).
    """
    accounts: Sequence[str] = row["line_accounts"]
    currencies: Sequence[str] = row["line_currencies"]
    amounts: Sequence[Decimal] = row["line_amounts"]
    build = JournalLine if validate else JournalLine.model_construct
    return tuple(
        build(account=a, currency=c, amount=m)
        for a, c, m in zip(accounts, currencies, amounts, strict=True)
    )


async def verify_chain(conn: Any, prefetch: int = 2000) -> list[str]:
    """Read the whole journal from Postgres and return the chain's problems (empty = intact)."""
    verifier = ChainVerifier()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(POSTINGS_SQL.format(where=""), prefetch=prefetch):
            verifier.feed(
                ChainEntry(
                    row["journal_seq"],
                    row["intent_id"],
                    row["account"],
                    lines_of(row, validate=False),
                    row["prev_hash"],
                    row["entry_hash"],
                )
            )
    return verifier.problems
