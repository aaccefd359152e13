"""Check one intent's chain of trusted events. Pure: facts in, a verdict out.

    submitted -> accepted -> analyzed -> approved -> filled -> posted
                                      \\-> risk.rejected  \\-> order.rejected
    any message -> dead letter (terminal unless `dlq retry` re-published it)

Each step needs the one before it (no fill without approval, no approval without analysis, no
analysis without acceptance), names it as its `causation_id`, and carries the same intent
(account, symbol, side, quantity, order type, limit). An intent ends in exactly one terminal
outcome: risk.rejected, order.rejected, ledger.posted or a dead letter. A dead letter of a
submission does not end an intent that another submission of the same id got accepted
(`intent_id_conflict`). No terminal outcome yet is `pending`, not an error. A submission without
an id is the intent's whose acceptance names its stream sequence (`facts.join_submissions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bus.replay import stored_time
from contracts import Side
from contracts import subjects as s
from contracts import topology as t
from contracts.kinds import (
    ACCEPTED,
    ANALYZED,
    APPROVED,
    DEAD_LETTER,
    FILLED,
    ORDER_REJECTED,
    PIPELINE_KINDS,
    POSTED,
    RISK_REJECTED,
    SUBMITTED,
)
from ops.audit.facts import TERM_NAMES, Fact, Key, decimal_or_none, submission_name

REQUIRES: tuple[tuple[str, str, str], ...] = (
    (ANALYZED, ACCEPTED, "analysis without acceptance"),
    (APPROVED, ANALYZED, "approval without analysis"),
    (RISK_REJECTED, ANALYZED, "risk rejection without analysis"),
    (FILLED, APPROVED, "fill without approval"),
    (ORDER_REJECTED, APPROVED, "executor rejection without approval"),
    (POSTED, FILLED, "posting without fill"),
)
EXCLUSIVE: tuple[tuple[str, str, str], ...] = (
    (APPROVED, RISK_REJECTED, "both approved and rejected by the risk gate"),
    (FILLED, ORDER_REJECTED, "both filled and rejected by the executor"),
)
WAITING_FOR = {
    SUBMITTED: "submitted, not yet accepted",
    ACCEPTED: "accepted, not yet analyzed",
    ANALYZED: "analyzed, no risk decision yet",
    APPROVED: "approved, not yet executed",
    FILLED: "filled, not yet posted by the ledger",
}


@dataclass
class Verdict:
    """What one intent's chain shows."""

    intent_id: str
    outcome: str
    """filled, rejected, dead_lettered, handed_over, pending, unchecked."""
    problems: list[tuple[Fact | None, str]] = field(default_factory=list)
    pending: str | None = None
    terminals: list[Fact] = field(default_factory=list)


def _one_per_kind(
    facts: Sequence[Fact], problems: list[tuple[Fact | None, str]]
) -> dict[str, list[Fact]]:
    """Group by kind; an agent event stored twice must be the same event (same id, content)."""
    by_kind: dict[str, list[Fact]] = {}
    for fact in facts:
        by_kind.setdefault(fact.kind, []).append(fact)
    for kind in PIPELINE_KINDS:
        found = by_kind.get(kind, [])
        if len(found) < 2:
            continue
        first = found[0]
        for other in found[1:]:
            if other.event_id != first.event_id:
                problems.append((other, f"a second, different {kind} event (first: {_at(first)})"))
            elif other.content != first.content:
                problems.append(
                    (other, f"{kind} stored again with different content (first: {_at(first)})")
                )
        by_kind[kind] = [first]
    return by_kind


def _at(fact: Fact) -> str:
    return f"{fact.stream} #{fact.seq}"


def _check_links(by: Mapping[str, list[Fact]], problems: list[tuple[Fact | None, str]]) -> None:
    def first(kind: str) -> Fact | None:
        found = by.get(kind)
        return found[0] if found else None

    for later, earlier, what in REQUIRES:
        fact = first(later)
        if fact is not None and first(earlier) is None:
            problems.append((fact, what))
    for a, b, what in EXCLUSIVE:
        if first(a) is not None and (other := first(b)) is not None:
            problems.append((other, what))
    for later, earlier in CAUSES:
        if earlier == SUBMITTED:
            continue  # a submission is the client's: it has no event id to name
        fact, cause = first(later), first(earlier)
        if fact is not None and cause is not None and fact.causation_id != cause.event_id:
            problems.append(
                (fact, f"causation_id {fact.causation_id} is not the {earlier} {cause.event_id}")
            )
    _check_stored_order(first, problems)


CAUSES: tuple[tuple[str, str], ...] = (
    (ACCEPTED, SUBMITTED),
    (ANALYZED, ACCEPTED),
    (APPROVED, ANALYZED),
    (RISK_REJECTED, ANALYZED),
    (FILLED, APPROVED),
    (ORDER_REJECTED, APPROVED),
    (POSTED, FILLED),
)
"""Each step and the one it follows: an effect is never stored before its cause."""


def _check_stored_order(
    first: Callable[[str], Fact | None], problems: list[tuple[Fact | None, str]]
) -> None:
    for later, earlier in CAUSES:
        fact, cause = first(later), first(earlier)
        if fact is None or cause is None or not fact.stored_at or not cause.stored_at:
            continue
        ahead = (stored_time(cause.stored_at) - stored_time(fact.stored_at)).total_seconds()
        if ahead > 0:
            problems.append(
                (fact, f"stored {ahead * 1000:.1f} ms before its cause, the {earlier} {_at(cause)}")
            )


def _check_terms(by: Mapping[str, list[Fact]], problems: list[tuple[Fact | None, str]]) -> None:
    carriers = [f for kind in PIPELINE_KINDS for f in by.get(kind, []) if f.terms is not None]
    if not carriers:
        return
    reference = carriers[0]
    assert reference.terms is not None
    for fact in carriers[1:]:
        assert fact.terms is not None
        for name, mine, theirs in zip(TERM_NAMES, fact.terms, reference.terms, strict=True):
            if mine != theirs:
                problems.append((fact, f"{name} is {mine} but the {reference.kind} says {theirs}"))
    for fact in carriers:
        assert fact.terms is not None
        token = fact.detail.get("account") if fact.kind == POSTED else fact.terms[1]
        if not s.names_intent(fact.subject, str(token), str(fact.intent_id)):
            problems.append(
                (fact, f"published on {fact.subject} for {token}, intent {fact.intent_id}")
            )
    submissions = [f.terms for f in by.get(SUBMITTED, []) if f.terms is not None]
    if ACCEPTED in by and submissions and reference.terms not in submissions:
        problems.append((by[ACCEPTED][0], "the accepted intent matches no submission of its id"))
    _check_amounts(by, reference, problems)


def _check_amounts(
    by: Mapping[str, list[Fact]], reference: Fact, problems: list[tuple[Fact | None, str]]
) -> None:
    assert reference.terms is not None
    account, symbol, side, quantity = reference.terms[:4]
    fill = by.get(FILLED, [None])[0]
    filled = fill.detail.get("fill_quantity") if fill is not None else None
    if fill is not None and (filled is None or filled <= 0 or filled > quantity):
        problems.append((fill, f"fill quantity {filled} is not within the intent's {quantity}"))
    posting = by.get(POSTED, [None])[0]
    if posting is None:
        return
    if posting.detail.get("account") != account:
        problems.append((posting, f"posted to {posting.detail.get('account')}, not {account}"))
    if isinstance(filled, Decimal):
        expected = filled if side == Side.BUY else -filled
        leg = f"{account}:position:{symbol}"
        amounts = [
            decimal_or_none(line.get("amount"))
            for line in posting.detail.get("lines", [])
            if isinstance(line, dict) and line.get("account") == leg
        ]
        moved = sum((a or Decimal(0) for a in amounts), Decimal(0))
        if moved != expected:
            problems.append((posting, f"moves the position by {moved}, the fill by {expected}"))


def _unsubmitted(
    by: Mapping[str, list[Fact]], intent_id: str, intent_of: Mapping[Key, str | None]
) -> str | None:
    """What is wrong with an acceptance when no submission of its intent is among its facts.

    Its submission is the one at its `submission_seq`. Stored without an id and not joined to
    the intent (`ops.audit.facts.join_submissions` was not run), it still goes by its public
    name: not a problem. Stored under another intent, or not at all, it is."""
    if ACCEPTED not in by or SUBMITTED in by:
        return None
    seq = by[ACCEPTED][0].detail.get("submission_seq")
    if not isinstance(seq, int) or (t.SUBMISSIONS, seq) not in intent_of:
        return "acceptance without submission"
    owner = intent_of[(t.SUBMISSIONS, seq)]
    if owner not in (None, intent_id, submission_name(seq)):
        return f"acceptance without submission: SUBMISSIONS #{seq} is intent {owner}'s"
    return None


def _terminals(by: Mapping[str, list[Fact]], retried: Mapping[int, list[Key]]) -> list[Fact]:
    out = [by[k][0] for k in (RISK_REJECTED, ORDER_REJECTED, POSTED) if by.get(k)]
    seen: set[int] = set()
    for letter in by.get(DEAD_LETTER, []):
        if letter.seq in retried or letter.seq in seen:
            continue
        seen.add(letter.seq)
        if str(letter.detail.get("origin_subject", "")).startswith(f"{SUBMITTED}.") and by.get(
            ACCEPTED
        ):
            continue  # a conflicting duplicate submission, not the intent's end
        out.append(letter)
    return out


def evaluate(
    intent_id: str,
    facts: Sequence[Fact],
    *,
    retried: Mapping[int, list[Key]],
    intent_of: Mapping[Key, str | None],
    full: bool,
) -> Verdict:
    """Check the trusted `facts` of one intent.

    `retried` maps a retried dead letter's DLQ sequence to where its message was re-published;
    `intent_of` gives the intent of any stored message; `full` says the replay began at the
    start of every stream (otherwise an intent whose submission is not in the window is only
    counted, not checked).
    """
    problems: list[tuple[Fact | None, str]] = []
    by = _one_per_kind(facts, problems)
    if not full and SUBMITTED not in by:
        return Verdict(intent_id, "unchecked")
    if full and (what := _unsubmitted(by, intent_id, intent_of)) is not None:
        problems.append((by[ACCEPTED][0], what))
    _check_links(by, problems)
    _check_terms(by, problems)
    terminals = _terminals(by, retried)
    verdict = Verdict(intent_id, "pending", problems, terminals=terminals)
    if len(terminals) > 1:
        named = ", ".join(f"{f.kind} ({_at(f)})" for f in terminals)
        problems.append((terminals[1], f"{len(terminals)} terminal outcomes: {named}"))
    if terminals:
        verdict.outcome = {
            POSTED: "filled",
            RISK_REJECTED: "rejected",
            ORDER_REJECTED: "rejected",
            DEAD_LETTER: "dead_lettered",
        }[terminals[0].kind]
        return verdict
    moved = [
        where
        for letter in by.get(DEAD_LETTER, [])
        for where in retried.get(letter.seq, [])
        if intent_of.get(where) not in (None, intent_id)
    ]
    if moved and not any(k in by for k in PIPELINE_KINDS):
        verdict.outcome = "handed_over"
        return verdict
    last = next((k for k in (FILLED, APPROVED, ANALYZED, ACCEPTED, SUBMITTED) if k in by), None)
    retrying = any(letter.seq in retried for letter in by.get(DEAD_LETTER, []))
    verdict.pending = WAITING_FOR.get(last or "", "no terminal outcome") + (
        " (its dead letter was retried)" if retrying else ""
    )
    return verdict
