"""The ledger's side of the audit: postings against the journal, balances against the fills."""

from __future__ import annotations

import uuid
from decimal import Decimal

from agents.ledger.booking import Position, book_fill, opening_lines
from agents.ledger.chain import GENESIS_HASH, ChainEntry, entry_hash
from contracts import JournalLine, LedgerPosted, OrderFilled
from ops.audit.facts import Fact
from ops.audit.ledger import JournalRow, LedgerSnapshot, check_balances, check_postings
from tests.support import events
from tests.support.audit import Chain, Streams

START = Decimal("1000000")


def ledger_of(
    count: int,
) -> tuple[list[tuple[Fact, LedgerPosted]], list[OrderFilled], LedgerSnapshot]:
    """An opening posting (journal_seq 1, never published), then `count` fills of AAPL."""
    streams = Streams()
    opening = opening_lines("paper-1", START)
    opening_id = uuid.uuid4()
    prev = entry_hash(GENESIS_HASH, 1, opening_id, "paper-1", opening)
    rows = {
        1: JournalRow(
            "opening", None, ChainEntry(1, opening_id, "paper-1", opening, GENESIS_HASH, prev)
        )
    }
    postings: list[tuple[Fact, LedgerPosted]] = []
    fills: list[OrderFilled] = []
    position: Position | None = None
    cash = START
    for n in range(count):
        chain = Chain(streams)
        _, fill = chain.filled(uuid.uuid4())
        booking = book_fill(position, fill)
        position = booking.position
        seq = n + 2
        event = events.ledger_posted(fill, journal_seq=seq, prev_hash=prev, lines=booking.lines)
        fact = streams.event("ledger.posted.paper-1", event)
        postings.append((fact, event))
        fills.append(fill)
        rows[seq] = JournalRow("fill", fill.event_id, ChainEntry.from_event(event))
        cash += next(ln.amount for ln in booking.lines if ln.account == "paper-1:cash:USD")
        prev = event.entry_hash
    assert position is not None
    snapshot = LedgerSnapshot(
        chain_problems=[],
        rows=rows,
        positions={("paper-1", "AAPL"): position},
        cash={("paper-1", "USD"): cash},
        starting_cash={"paper-1": START},
    )
    return postings, fills, snapshot


def test_postings_matching_the_journal_pass() -> None:
    postings, fills, snapshot = ledger_of(3)
    errors, warnings, _ = check_postings(postings, snapshot, full=True)
    assert errors == [] and warnings == []
    assert check_balances(fills, snapshot) == []


def test_a_journal_row_whose_lines_were_altered_is_named() -> None:
    postings, _, snapshot = ledger_of(3)
    row = snapshot.rows[3]
    lines = list(row.entry.lines)
    lines[0] = JournalLine.model_construct(
        account=lines[0].account, currency=lines[0].currency, amount=lines[0].amount + 1
    )
    snapshot.rows[3] = JournalRow(
        row.kind, row.fill_event_id, ChainEntry(**{**row.entry.__dict__, "lines": tuple(lines)})
    )
    errors, _, _ = check_postings(postings, snapshot, full=True)
    assert [(e.stream, e.seq) for e in errors] == [("LEDGER", 2)]
    assert "lines differ from the journal row" in errors[0].what


def test_a_posting_missing_from_the_stream_is_a_warning_and_the_chain_still_links() -> None:
    postings, _, snapshot = ledger_of(3)
    errors, warnings, _ = check_postings([postings[0], postings[2]], snapshot, full=True)
    assert errors == []
    assert len(warnings) == 1 and "journal_seq 3 is booked in Postgres" in warnings[0].what


def test_a_broken_stream_chain_is_named_without_postgres() -> None:
    postings, _, _ = ledger_of(3)
    fact, event = postings[1]
    forged = event.model_copy(update={"prev_hash": "f" * 64})
    errors, _, _ = check_postings([postings[0], (fact, forged), postings[2]], None, full=True)
    assert errors and all(e.stream == "LEDGER" for e in errors)
    assert any("prev_hash" in e.what for e in errors)


def test_positions_or_cash_differing_from_the_fills_are_named() -> None:
    _, fills, snapshot = ledger_of(2)
    snapshot.cash[("paper-1", "USD")] += Decimal("0.01")
    found = check_balances(fills, snapshot)
    assert [f.what.split(":")[0] for f in found] == ["cash paper-1 USD"]


def test_a_journal_fill_absent_from_orders_is_named() -> None:
    _, fills, snapshot = ledger_of(2)
    found = check_balances(fills[:1], snapshot)
    assert any("books a fill that ORDERS does not hold" in f.what for f in found)
