"""The rationale generator of `ops.bench.rationales`: deterministic, distinct, 10-40 words of desk
language that the analyst reviews as an ordinary, specific reason (never as injected text)."""

from __future__ import annotations

import re
from itertools import islice

from agents.analyst.injection import detect_injection
from agents.analyst.rules import findings
from contracts.intent import MAX_RATIONALE_BYTES
from ops.bench.rationales import ACCOUNTS, MAX_WORDS, MIN_WORDS, SYMBOLS, Rationales, rationale
from tests.support.analyst import make_case

SAMPLE = 20_000


def test_the_same_seed_and_index_give_the_same_text_whatever_came_before() -> None:
    supply = Rationales(seed=3)
    first = list(islice(supply, 50))

    assert first == [rationale(3, i) for i in range(50)]
    assert rationale(3, 49) == first[49]
    assert supply.issued == first and supply.index == 50


def test_another_seed_gives_other_texts() -> None:
    assert all(rationale(1, i) != rationale(2, i) for i in range(200))


def test_no_two_of_twenty_thousand_are_equal() -> None:
    texts = list(islice(Rationales(), SAMPLE))

    assert len(set(texts)) == SAMPLE


def test_every_text_has_ten_to_forty_words_and_lengths_span_the_range() -> None:
    counts = [len(rationale(11, i).split()) for i in range(SAMPLE)]

    assert min(counts) == MIN_WORDS
    assert max(counts) == MAX_WORDS
    assert len(set(counts)) == MAX_WORDS - MIN_WORDS + 1  # every length occurs


def test_texts_mix_in_symbols_accounts_and_numbers() -> None:
    texts = [rationale(11, i) for i in range(2_000)]

    assert all(re.search(r"\d", text) for text in texts)
    assert {sym for sym in SYMBOLS if any(sym in text for text in texts)} == set(SYMBOLS)
    assert {acct for acct in ACCOUNTS if any(acct in text for text in texts)} == set(ACCOUNTS)


def test_no_text_reads_as_prompt_injection_or_as_a_vague_reason() -> None:
    texts = [rationale(11, i) for i in range(SAMPLE)]
    reviewed = texts[:1_000]

    assert [t for t in texts if detect_injection(rationale=t) is not None] == []
    assert all(len(t.encode()) <= MAX_RATIONALE_BYTES for t in texts)
    flagged = {f.code for t in reviewed for f in findings(make_case(rationale=t))}
    assert flagged.isdisjoint({"prompt_injection", "vague_rationale"})
