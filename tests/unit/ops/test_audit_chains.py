"""One intent's chain: the checks `audit verify` runs on trusted events."""

from __future__ import annotations

import uuid

from contracts.base import submission_ref
from ops.audit.chains import Verdict, evaluate
from ops.audit.facts import Fact, fact_of
from tests.support.audit import Chain, Streams, submission


def judge(
    chain: Chain,
    facts: list[Fact],
    retried: dict[int, list[tuple[str, int]]] | None = None,
    full: bool = True,
) -> Verdict:
    return evaluate(str(chain.intent_id), facts, retried=retried or {}, intent_of={}, full=full)


def whats(verdict: Verdict) -> list[str]:
    return [what for _, what in verdict.problems]


def test_complete_chain_is_filled_without_problems() -> None:
    chain = Chain(Streams())
    verdict = judge(chain, chain.complete())
    assert verdict.outcome == "filled"
    assert verdict.problems == []
    assert verdict.pending is None


def test_fill_without_approval_is_named() -> None:
    chain = Chain(Streams())
    fill, _ = chain.filled(uuid.uuid4())
    verdict = judge(chain, [chain.submitted(), fill])
    assert "fill without approval" in whats(verdict)
    assert verdict.problems[0][0] is fill


def test_approval_without_analysis_and_analysis_without_acceptance_are_named() -> None:
    chain = Chain(Streams())
    _, accepted = chain.accepted()
    analyzed_fact, analyzed = chain.analyzed(accepted)
    approved_fact, _ = chain.approved(analyzed.event_id)
    assert "analysis without acceptance" in whats(judge(chain, [chain.submitted(), analyzed_fact]))
    assert "approval without analysis" in whats(judge(chain, [chain.submitted(), approved_fact]))


def test_quantity_changed_along_the_chain_is_named() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    other = Chain(chain.streams, chain.intent_id, quantity="11")
    _, accepted = chain.accepted()
    analyzed, _ = other.analyzed(accepted)
    facts[2] = analyzed
    found = whats(judge(chain, facts))
    assert any(w.startswith("quantity is 11") for w in found), found


def test_fill_larger_than_the_intent_is_named() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    approved_id = facts[3].event_id
    assert approved_id is not None
    facts[4], fill = chain.filled(uuid.UUID(approved_id), quantity="12")
    facts[5], _ = chain.posted(fill)
    assert any("fill quantity 12" in w for w in whats(judge(chain, facts)))


def test_wrong_causation_is_named() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    facts[4], fill = chain.filled(uuid.uuid4())
    facts[5], _ = chain.posted(fill)
    assert any(w.startswith("causation_id") for w in whats(judge(chain, facts)))


def test_two_terminal_outcomes_are_named() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    _, analyzed = chain.analyzed(chain.accepted()[1])
    facts.append(chain.risk_rejected(analyzed))
    found = whats(judge(chain, facts))
    assert any("2 terminal outcomes" in w for w in found), found
    assert "both approved and rejected by the risk gate" in found


def test_in_flight_intent_is_pending_not_a_problem() -> None:
    chain = Chain(Streams())
    facts = chain.complete()[:4]
    verdict = judge(chain, facts)
    assert verdict.outcome == "pending"
    assert verdict.pending == "approved, not yet executed"
    assert verdict.problems == []


def test_dead_lettered_submission_is_its_terminal_outcome() -> None:
    chain = Chain(Streams())
    sub = chain.submitted()
    letter = chain.dead_letter(b'{"intent_id": "%s"}' % str(chain.intent_id).encode(), sub.seq)
    verdict = judge(chain, [sub, letter])
    assert verdict.outcome == "dead_lettered"
    assert verdict.problems == []


def test_retried_dead_letter_is_not_terminal_and_the_repair_completes_the_chain() -> None:
    chain = Chain(Streams())
    bad = chain.submitted()
    letter = chain.dead_letter(submission(chain.intent_id), bad.seq)
    facts = [bad, letter, *chain.complete()]
    verdict = judge(chain, facts, retried={letter.seq: [("SUBMISSIONS", 99)]})
    assert verdict.outcome == "filled"
    assert verdict.problems == []


def test_conflicting_duplicate_submission_does_not_end_an_accepted_intent() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    duplicate = chain.submitted()
    facts += [duplicate, chain.dead_letter(submission(chain.intent_id), duplicate.seq)]
    verdict = judge(chain, facts)
    assert verdict.outcome == "filled"
    assert verdict.problems == []


def test_submission_without_id_goes_by_its_public_name_until_joined() -> None:
    streams = Streams()
    raw = streams.store("intent.submitted.AAPL", b"not json")
    assert fact_of(raw).intent_id == str(submission_ref(raw.seq))  # joined: test_audit_join


def test_partial_replay_does_not_check_intents_begun_before_the_window() -> None:
    chain = Chain(Streams())
    facts = chain.complete()[3:]
    verdict = judge(chain, facts, full=False)
    assert verdict.outcome == "unchecked"
    assert verdict.problems == []


def test_an_effect_stored_before_its_cause_is_named() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    facts[0].stored_at = "2025-06-02T10:00:01.5Z"  # the submission, after all that follows it
    facts[3].stored_at = "2025-06-02T10:00:02.25Z"  # the approval, after the fill
    found = whats(judge(chain, facts))
    assert any(w.startswith("stored 1500.0 ms before its cause, the intent.sub") for w in found)
    assert any(w.startswith("stored 2250.0 ms before its cause, the risk.appr") for w in found)
    assert len([w for w in found if "before its cause" in w]) == 2


def test_stored_times_compare_by_value_not_by_spelling() -> None:
    chain = Chain(Streams())
    facts = chain.complete()
    facts[1].stored_at = "2025-06-02T10:00:00.9Z"  # accepted; trailing zeros trimmed by the server
    facts[2].stored_at = "2025-06-02T10:00:00.906Z"  # analyzed, 6 ms later
    for later in facts[3:]:
        later.stored_at = "2025-06-02T10:00:01Z"
    assert not [w for w in whats(judge(chain, facts)) if "before its cause" in w]
