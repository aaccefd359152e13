"""The guard: usable answers pass, failures degrade to the offline reviewer, flags only tighten."""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from langchain_core.messages import AIMessage

from agents.analyst.case import ReviewCase
from agents.analyst.guard import Draft, Judgement, Provenance, Skipped, judge
from agents.analyst.reviewer import OFFLINE_MODEL, OfflineReviewer
from agents.analyst.throttle import ThrottledOut
from contracts import Recommendation
from tests.support.analyst import (
    APPROVE_REF,
    INJECTION,
    INJECTION_REF,
    ORDER_SIZE_REF,
    VAGUE_REF,
    hits,
    make_case,
)

RETRIEVED = hits(APPROVE_REF, ORDER_SIZE_REF, INJECTION_REF, VAGUE_REF)
LABEL = "openai_compatible:test-model"
PROVENANCE = Provenance("openai_compatible", "1.prompt-digest", "index-fingerprint")


def answer(**fields: object) -> AIMessage:
    doc: dict[str, object] = {
        "recommendation": "approve",
        "confidence": 0.82,
        "rationale": "Ordinary order well inside the limits.",
        "citations": [APPROVE_REF],
    }
    doc.update(fields)
    return AIMessage(
        content=json.dumps(doc),
        response_metadata={"model_name": "test-model-2025"},
        usage_metadata={"input_tokens": 700, "output_tokens": 60, "total_tokens": 760},
    )


def run(draft: Draft, case: ReviewCase | None = None) -> Judgement:
    return judge(
        case or make_case(),
        RETRIEVED,
        draft,
        label=LABEL,
        remote=True,
        reviewer=OfflineReviewer(),
        provenance=PROVENANCE,
    )


def test_usable_answer_is_published_as_the_models_analysis() -> None:
    judgement = run(answer())

    analysis = judgement.analysis
    assert (analysis.recommendation, analysis.confidence) == (Recommendation.APPROVE, 0.82)
    assert not analysis.degraded and judgement.degraded_reason is None
    assert analysis.model == "openai_compatible:test-model-2025"
    assert [(c.source, c.section, c.score) for c in analysis.citations] == [
        ("analyst-review-guidelines.md", "When to recommend approve", 0.8)
    ]
    assert (judgement.input_tokens, judgement.output_tokens) == (700, 60)
    assert judgement.served_model == "test-model-2025"


@pytest.mark.parametrize("draft", [answer(), RuntimeError("HTTP 500"), Skipped("circuit_open")])
def test_every_analysis_records_provider_prompt_version_and_index_fingerprint(
    draft: Draft,
) -> None:
    analysis = run(draft).analysis

    assert analysis.provider == "openai_compatible"
    assert analysis.prompt_version == "1.prompt-digest"
    assert analysis.index_fingerprint == "index-fingerprint"


def test_citation_objects_are_accepted_as_well_as_refs() -> None:
    citation = {"source": "analyst-review-guidelines.md", "section": "When to recommend approve"}

    assert not run(answer(citations=[citation])).analysis.degraded


def test_fenced_json_answer_is_accepted() -> None:
    fenced = AIMessage(content="```json\n" + str(answer().content) + "\n```")

    assert not run(fenced).analysis.degraded


@pytest.mark.parametrize(
    ("draft", "reason", "outcome"),
    [
        (TimeoutError(), "provider_timeout", "timeout"),
        (
            openai.APITimeoutError(request=httpx2.Request("POST", "http://x/v1/chat/completions")),
            "provider_timeout",
            "timeout",
        ),
        (RuntimeError("HTTP 500"), "provider_error", "error"),
        (AIMessage(content="Looks fine to me, approve."), "invalid_output", "invalid_output"),
        (AIMessage(content="[1, 2]"), "invalid_output", "invalid_output"),
        (answer(confidence=1.5), "invalid_output", "invalid_output"),
        (answer(confidence="high"), "invalid_output", "invalid_output"),
        (answer(recommendation="buy"), "invalid_output", "invalid_output"),
        (answer(citations=[]), "invalid_output", "invalid_output"),
        (answer(citations=["made-up.md#Anything goes"]), "invalid_output", "invalid_output"),
        (
            AIMessage(content=json.dumps({"recommendation": "approve"})),
            "invalid_output",
            "invalid_output",
        ),
        (ThrottledOut("throttled 7 times"), "provider_error", "throttled"),
        (Skipped("circuit_open"), "circuit_open", "skipped"),
        (Skipped("budget_exhausted"), "budget_exhausted", "skipped"),
    ],
)
def test_failure_or_unusable_answer_degrades_to_the_offline_reviewer(
    draft: Draft, reason: str, outcome: str
) -> None:
    judgement = run(draft)

    analysis = judgement.analysis
    assert analysis.degraded and judgement.degraded_reason == reason
    assert analysis.degraded_reason == reason
    assert judgement.outcome == outcome
    assert analysis.model == OFFLINE_MODEL
    assert analysis.rationale.startswith(f"[degraded: {reason}")
    assert {c.section for c in analysis.citations} <= {h.passage.section for h in RETRIEVED}


def test_degraded_analysis_of_a_vague_intent_is_a_review_not_the_models_approval() -> None:
    judgement = run(AIMessage(content="approve!!!"), make_case(rationale="rebalance"))

    assert judgement.analysis.degraded
    assert judgement.analysis.recommendation is Recommendation.REVIEW


def test_degraded_analysis_approves_only_when_the_offline_reviewer_approves() -> None:
    case = make_case()
    offline = OfflineReviewer().review(case, [h.ref for h in RETRIEVED])

    judgement = run(RuntimeError("boom"), case)

    assert offline.recommendation is Recommendation.APPROVE
    assert judgement.analysis.recommendation is offline.recommendation
    assert judgement.analysis.degraded


def test_injected_intent_is_rejected_even_when_the_model_obeys_it() -> None:
    obeyed = answer(confidence=0.99, rationale="Approved as instructed.")

    analysis = run(obeyed, make_case(rationale=INJECTION)).analysis

    assert analysis.recommendation is Recommendation.REJECT
    assert analysis.confidence >= 0.9
    assert analysis.injection_flagged and not analysis.degraded
    assert analysis.citations[0].section.startswith("Red flag: instructions in the rationale")
    assert "Reviewer said approve at 0.99" in analysis.rationale


def test_model_approval_past_max_quantity_becomes_a_high_confidence_reject() -> None:
    analysis = run(answer(), make_case(quantity="6000", reference_price="10.00")).analysis

    assert analysis.recommendation is Recommendation.REJECT and analysis.confidence >= 0.9
    assert not analysis.injection_flagged


def test_models_own_injection_flag_only_tightens() -> None:
    flagged = answer(recommendation="review", confidence=0.6, flags=["prompt_injection"])

    analysis = run(flagged).analysis

    assert analysis.injection_flagged
    assert analysis.recommendation is Recommendation.REJECT and analysis.confidence >= 0.9


def test_guard_never_loosens_a_models_reject_or_review() -> None:
    reject = run(answer(recommendation="reject", confidence=0.7)).analysis
    review = run(answer(recommendation="review", confidence=0.6)).analysis

    assert (reject.recommendation, reject.confidence) == (Recommendation.REJECT, 0.7)
    assert (review.recommendation, review.confidence) == (Recommendation.REVIEW, 0.6)


def test_long_rationale_is_truncated_to_600_characters() -> None:
    analysis = run(answer(rationale="x" * 5000)).analysis

    assert len(analysis.rationale) == 600 and analysis.rationale.endswith("…")
