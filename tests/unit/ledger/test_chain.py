"""The hash chain: canonical form, linkage, and what verification reports."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

from agents.ledger.booking import book_fill
from agents.ledger.chain import (
    GENESIS_HASH,
    ChainEntry,
    canonical_amount,
    canonical_posting,
    entry_hash,
    verify_entries,
)
from contracts import JournalLine
from tests.support.events import make_fill

D = Decimal


def build_chain(count: int) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        fill = make_fill("buy", str(seq), "100.5", "0.01")
        lines = book_fill(None, fill).lines
        digest = entry_hash(prev, seq, fill.intent_id, "paper-1", lines)
        entries.append(ChainEntry(seq, fill.intent_id, "paper-1", lines, prev, digest))
        prev = digest
    return entries


def test_canonical_amount_drops_trailing_zeros() -> None:
    assert canonical_amount(D("1900.10")) == "1900.1"
    assert canonical_amount(D("1900.00")) == "1900"
    assert canonical_amount(D("-0.000")) == "0"
    assert canonical_amount(D("1E+3")) == "1000"


def test_hash_ignores_line_order_and_decimal_scale() -> None:
    intent = uuid.uuid4()
    a = JournalLine(account="p:cash:USD", currency="USD", amount=D("-10.50"))
    b = JournalLine(account="p:fees:USD", currency="USD", amount=D("10.5"))
    b_scaled = JournalLine(account="p:fees:USD", currency="USD", amount=D("10.500"))

    assert entry_hash(GENESIS_HASH, 1, intent, "p", [a, b]) == entry_hash(
        GENESIS_HASH, 1, intent, "p", [b_scaled, a]
    )


def test_hash_covers_sequence_intent_account_lines_and_previous_hash() -> None:
    intent = uuid.uuid4()
    lines = [JournalLine(account="p:cash:USD", currency="USD", amount=D("1"))]
    base = entry_hash(GENESIS_HASH, 1, intent, "p", lines)

    assert base != entry_hash("1" * 64, 1, intent, "p", lines)
    assert base != entry_hash(GENESIS_HASH, 2, intent, "p", lines)
    assert base != entry_hash(GENESIS_HASH, 1, uuid.uuid4(), "p", lines)
    assert base != entry_hash(GENESIS_HASH, 1, intent, "q", lines)
    assert '"journal_seq":1' in canonical_posting(1, intent, "p", lines)


def test_intact_chain_verifies_clean() -> None:
    assert verify_entries(build_chain(5)) == []


def test_altered_amount_is_reported_with_its_sequence() -> None:
    chain = build_chain(4)
    line = chain[2].lines[0]
    altered = (line.model_copy(update={"amount": line.amount + 1}), *chain[2].lines[1:])
    chain[2] = dataclasses.replace(chain[2], lines=altered)

    problems = verify_entries(chain)

    assert any(p.startswith("journal_seq 3: entry_hash") for p in problems)
    assert any(p.startswith("journal_seq 3: lines do not balance in USD") for p in problems)
    assert all(p.startswith("journal_seq 3") for p in problems)


def test_removed_posting_breaks_the_link_of_the_next() -> None:
    chain = build_chain(4)
    del chain[1]

    problems = verify_entries(chain)

    assert len(problems) == 1
    assert problems[0].startswith("journal_seq 3: prev_hash")


def test_chain_can_be_checked_from_a_later_posting_given_its_prev_hash() -> None:
    chain = build_chain(4)

    assert verify_entries(chain[2:], first_prev_hash=chain[1].entry_hash) == []
