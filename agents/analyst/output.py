"""The reviewer's answer: one JSON object per intent, as `analyst-review-guidelines.md` says."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts import Recommendation

MAX_RATIONALE_CHARS = 600


class ReviewOutput(BaseModel):
    """What a chat model (or the offline reviewer) must return for one intent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    recommendation: Recommendation
    """`approve`, `reject` or `review`."""
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    """Probability that a risk officer with the same inputs would agree."""
    rationale: Annotated[str, Field(min_length=1)]
    """Plain text; truncated to 600 characters when published."""
    citations: tuple[str, ...]
    """Passages relied on, as `<file>#<section heading>`."""
    flags: tuple[str, ...] = ()
    """Red flags found, e.g. `prompt_injection`."""

    @field_validator("citations", mode="before")
    @classmethod
    def _citation_refs(cls, value: Any) -> Any:
        # Accept {"source": ..., "section": ...} objects as well as "<file>#<section>" strings.
        if isinstance(value, list | tuple):
            return tuple(
                f"{v.get('source')}#{v.get('section')}"
                if isinstance(v, dict) and "source" in v and "section" in v
                else v
                for v in value
            )
        return value


class UnusableOutput(ValueError):
    """A model's answer that cannot be used; `detail` says what was wrong."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def _strip_fence(text: str) -> str:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return body.strip()


def parse_output(content: object, retrieved_refs: frozenset[str]) -> ReviewOutput:
    """Parse a model's message content, or raise UnusableOutput saying why it is unusable.

    Unusable: not a JSON object, a missing or malformed field, a confidence outside 0..1, no
    citation although passages were retrieved, or a citation of a passage not retrieved.
    """
    if not isinstance(content, str):
        raise UnusableOutput(f"expected text content, got {type(content).__name__}")
    try:
        doc = json.loads(_strip_fence(content))
    except ValueError:
        raise UnusableOutput(f"not JSON: {content[:80]!r}") from None
    if not isinstance(doc, dict):
        raise UnusableOutput(f"expected a JSON object, got {type(doc).__name__}")
    try:
        output = ReviewOutput.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'output'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise UnusableOutput(problems) from None
    if retrieved_refs and not output.citations:
        raise UnusableOutput("no citations although passages were retrieved")
    unknown = [c for c in output.citations if c not in retrieved_refs]
    if unknown:
        raise UnusableOutput(f"cites passages not retrieved for this review: {unknown[:3]}")
    return output
