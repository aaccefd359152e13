"""Prompt-injection detection over an intent's free text (rationale, strategy name).

The text is data for the reviewer, never instructions. Text that addresses the reviewer (asks
it to ignore its instructions, to approve, to take a role, or carries chat-template role tags)
is flagged; a flagged intent is rejected with high confidence whatever the model said.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

QUOTE_CHARS = 80
"""At most this many characters of the offending text are quoted in a rationale."""

_INVISIBLE = dict.fromkeys(
    cp for cp in range(0x2000, 0x2070) if unicodedata.category(chr(cp)) == "Cf"
) | {0xFEFF: None, 0x00AD: None}

_DETERMINERS = (
    r"(?:(?:all|any|the|your|my|previous|prior|above|earlier|preceding|these|those|of|system)\s+)*"
)
_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "ignore_instructions",
        r"\b(ignore|forget|override|bypass)\s+"
        + _DETERMINERS
        + r"(instructions?|prompts?|rules|guidelines|polic(y|ies)|directions|context)\b"
        + r"|\b(new|updated|revised|real) instructions\b",
    ),
    ("disregard", r"\bdisregard\b"),
    ("role_change", r"\byou are (now|no longer)\b|\bpretend (to be|you are)\b"),
    ("system_prompt", r"\bsystem\s*prompt\b|\bdeveloper\s*(message|mode)\b|\bjailbreak"),
    (
        "approve_demand",
        r"\bapprove\s+(this|it|the (trade|order)|regardless|immediately|anyway|now)\b"
        + r"|\b(must|shall) be approved\b|\bauto[- ]?approve",
    ),
    ("recommend_demand", r"\b(recommend|output|respond with|answer|return)\s+\W?approve\b"),
    (
        "authority_claim",
        r"\bas (the|a|your) (risk officer|operator|administrator|admin|developer|head of risk)\b"
        + r"|\b(i|we) (hereby )?authori[sz]e\b|\boperator (has )?authori[sz]ed\b",
    ),
    (
        "kill_switch_exemption",
        r"\b(kill switch|halt)\b.{0,40}\b(false alarm|does not apply|exempt(ion)?)\b",
    ),
    (
        "role_tag",
        r"<\|?\s*(im_start|im_end|system|assistant|user|endoftext)\s*\|?>|\[/?(inst|sys)\]"
        + r"|<</?sys>>",
    ),
    ("instruction_header", r"#{2,}\s*(instruction|system|new task|response)s?\b"),
    ("role_prefix", r"(^|\n)\s*(system|assistant|developer)\s*:"),
    ("output_format", r"\b(change|switch) (the |your )?(output|response) format\b"),
)
_COMPILED = tuple((name, re.compile(rx, re.IGNORECASE | re.DOTALL)) for name, rx in _PATTERNS)


@dataclass(frozen=True)
class InjectionFinding:
    """Why a text was flagged."""

    pattern: str
    """Name of the first pattern that matched, e.g. `ignore_instructions`."""
    field: str
    """Which intent field carried it: `rationale` or `strategy`."""
    excerpt: str
    """The start of the offending text, at most `QUOTE_CHARS` characters."""


def normalize(text: str) -> str:
    """Fold the text so look-alike spellings match: NFKC, no invisible characters, one space."""
    folded = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return re.sub(r"[ \t\r\f\v]+", " ", folded)


def detect_injection(**fields: str | None) -> InjectionFinding | None:
    """Return the first injection pattern found in the named text fields, or None."""
    for field_name, text in fields.items():
        if not text:
            continue
        folded = normalize(text)
        for name, pattern in _COMPILED:
            if pattern.search(folded):
                excerpt = " ".join(folded.split())[:QUOTE_CHARS]
                return InjectionFinding(pattern=name, field=field_name, excerpt=excerpt)
    return None
