"""The guard: turn a model's answer into an `Analysis`, or fall back to the offline reviewer.

Per intent:
1. a timeout, an error (a 429 still there after every retry included), a skipped call (circuit
   open, budget spent) or an unusable answer (not JSON, a missing field, a confidence outside
   0..1, a citation of a passage not retrieved) is replaced by the offline reviewer's analysis,
   marked `degraded=True` with the reason: never a silent approval. Nothing else degrades;
2. the hard findings of the rules (injected instructions, a halt, a breached limit) can only
   make the answer more restrictive: such an intent is a `reject` with confidence >= 0.95,
   whatever the model said. The analyst vetoes; it never approves past a limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage

from agents.analyst.case import ReviewCase
from agents.analyst.output import ReviewOutput, UnusableOutput, parse_output
from agents.analyst.reviewer import OFFLINE_MODEL, OfflineReviewer
from agents.analyst.rules import (
    GUIDE,
    HARD_CONFIDENCE,
    Finding,
    findings,
    pick_citations,
    truncate,
)
from agents.analyst.throttle import ThrottledOut
from contracts import Analysis, Citation, Recommendation
from knowledge import Hit

PROVIDER_TIMEOUT = "provider_timeout"
PROVIDER_ERROR = "provider_error"
INVALID_OUTPUT = "invalid_output"
PROMPT_INJECTION = "prompt_injection"
MODEL_FLAGGED_INJECTION = Finding(
    PROMPT_INJECTION,
    Recommendation.REJECT,
    HARD_CONFIDENCE,
    "The reviewer found instructions addressed to it in the intent's text.",
    (f"{GUIDE}#Red flag: instructions in the rationale (prompt injection)",),
    hard=True,
)


@dataclass(frozen=True)
class Skipped:
    """The model was not called for this intent (circuit open, budget spent)."""

    reason: str


Draft = BaseMessage | Skipped | BaseException
"""What the assess step got for one intent."""


@dataclass(frozen=True)
class Provenance:
    """What an analysis records about how it was made, besides the model that answered."""

    provider: str
    """The configured provider."""
    prompt_version: str
    index_fingerprint: str | None


@dataclass(frozen=True)
class Judgement:
    """The guarded analysis of one intent and how it came about."""

    analysis: Analysis
    outcome: str
    """The model call: `ok`, `timeout`, `error`, `throttled`, `invalid_output` or `skipped`."""
    degraded_reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    served_model: str | None = None
    """The model name the provider answered with (whose tokens these are)."""


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout of any layer (asyncio, httpx, openai's APITimeoutError)."""
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


def _usage(message: BaseMessage) -> tuple[int, int]:
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    if not usage:
        return 0, 0
    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))


def enforce_floor(output: ReviewOutput, case: ReviewCase, retrieved: Sequence[str]) -> ReviewOutput:
    """Make `output` a high-confidence reject when a hard finding applies; never loosen it."""
    hard = [f for f in findings(case) if f.hard]
    if PROMPT_INJECTION in output.flags and all(f.code != PROMPT_INJECTION for f in hard):
        hard.append(MODEL_FLAGGED_INJECTION)  # a model's own flag also only tightens
    if not hard:
        return output
    floor = max(f.confidence for f in hard)
    flags = tuple(dict.fromkeys((*output.flags, *(f.code for f in hard))))
    if output.recommendation is Recommendation.REJECT and output.confidence >= floor:
        return output.model_copy(update={"flags": flags})
    citations = list(output.citations)
    for finding in hard:
        for ref in pick_citations(finding.cites, retrieved):
            if ref not in citations:
                citations.insert(0, ref)
    reasons = " ".join(f.reason for f in hard)
    said = f"{output.recommendation} at {output.confidence:.2f}"
    return ReviewOutput(
        recommendation=Recommendation.REJECT,
        confidence=floor,
        rationale=truncate(f"{reasons} (Reviewer said {said}: {output.rationale})"),
        citations=tuple(citations),
        flags=flags,
    )


def _citations(refs: Sequence[str], hits: Sequence[Hit]) -> tuple[Citation, ...]:
    by_ref = {h.ref: h for h in hits}
    out = []
    for ref in refs:
        hit = by_ref.get(ref)
        if hit is not None:
            score = round(min(1.0, max(0.0, hit.score)), 4)
            out.append(
                Citation(source=hit.passage.source, section=hit.passage.section, score=score)
            )
    return tuple(out)


def judge(
    case: ReviewCase,
    hits: Sequence[Hit],
    draft: Draft,
    *,
    label: str,
    remote: bool,
    reviewer: OfflineReviewer,
    provenance: Provenance,
) -> Judgement:
    """Validate one draft answer and return the analysis to publish.

    `label` names the configured model in analyses (e.g. `openai:gpt-4o-mini`); a remote
    model's served name replaces the configured one when the response carries it.
    """
    refs = [h.ref for h in hits]
    output: ReviewOutput | None = None
    outcome, reason, detail = "ok", None, ""
    input_tokens = output_tokens = 0
    model_name = label
    served: str | None = None
    if isinstance(draft, Skipped):
        outcome, reason = "skipped", draft.reason
    elif isinstance(draft, BaseException):
        timeout = is_timeout(draft)
        outcome = "timeout" if timeout else "error"
        if isinstance(draft, ThrottledOut):
            outcome = "throttled"
        reason = PROVIDER_TIMEOUT if timeout else PROVIDER_ERROR
        detail = f"{type(draft).__name__}: {draft}"[:200]
    else:
        input_tokens, output_tokens = _usage(draft)
        served = draft.response_metadata.get("model_name") if remote else None
        if served:
            model_name = f"{label.split(':', 1)[0]}:{served}"
        try:
            output = parse_output(draft.content, frozenset(refs))
        except UnusableOutput as exc:
            outcome, reason, detail = INVALID_OUTPUT, INVALID_OUTPUT, exc.detail[:200]
    if output is None:
        output = reviewer.review(case, refs)
        model_name = OFFLINE_MODEL
    output = enforce_floor(output, case, refs)
    prefix = f"[degraded: {reason}{' - ' + detail if detail else ''}] " if reason else ""
    analysis = Analysis(
        recommendation=output.recommendation,
        confidence=output.confidence,
        rationale=prefix + truncate(output.rationale),
        citations=_citations(output.citations, hits),
        model=model_name,
        degraded=reason is not None,
        injection_flagged=PROMPT_INJECTION in output.flags,
        degraded_reason=reason,
        provider=provenance.provider,
        prompt_version=provenance.prompt_version,
        index_fingerprint=provenance.index_fingerprint,
    )
    billed = served or (label.split(":", 1)[-1] if remote else None)
    return Judgement(analysis, outcome, reason, input_tokens, output_tokens, billed)
