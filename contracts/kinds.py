"""What a stored message is, from its subject alone, and how an intent ends.

The subject is the one fact about a message the server enforces (each identity may publish only
its own subjects): the kind of an event, and who may have produced it, come from the subject,
never from a header or payload field the sender chose. Pure; derived from the topology.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from contracts import subjects as s
from contracts import topology as t
from contracts.types import AGENTS, Identity

SUBMITTED = s.INTENT_SUBMITTED
ACCEPTED = s.INTENT_ACCEPTED
ANALYZED = s.INTENT_ANALYZED
APPROVED = s.RISK_APPROVED
RISK_REJECTED = s.RISK_REJECTED
FILLED = s.ORDER_FILLED
ORDER_REJECTED = s.ORDER_REJECTED
POSTED = s.LEDGER_POSTED
DEAD_LETTER = "dead_letter"
RETRIED = "dead_letter.retried"
PURGED = "dead_letter.purged"
CONTROL = "control"
OTHER = "other"

PIPELINE_KINDS = (ACCEPTED, ANALYZED, APPROVED, RISK_REJECTED, FILLED, ORDER_REJECTED, POSTED)
"""Kinds of `IntentEvent`, published by the agents."""

TRAIL_STREAMS = (t.SUBMISSIONS, t.INTENTS, t.RISK, t.ORDERS, t.LEDGER, t.DLQ)
"""The streams that hold an intent's events."""


class Outcome(StrEnum):
    """How an intent ended, or that it has not."""

    FILLED = "filled"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    HANDED_OVER = "handed_over"
    """Its dead letter was retried as another intent's message."""
    PENDING = "pending"
    UNCHECKED = "unchecked"
    """An audit window that does not hold the submission cannot judge the chain."""
    UNKNOWN = "unknown"
    """Nothing is stored for the id."""


TERMINAL: dict[str, Outcome] = {
    POSTED: Outcome.FILLED,
    RISK_REJECTED: Outcome.REJECTED,
    ORDER_REJECTED: Outcome.REJECTED,
    DEAD_LETTER: Outcome.DEAD_LETTERED,
}
"""The kinds that end an intent, and the outcome each means (a fill ends when it is posted)."""


def kind_of(subject: str) -> str:
    """Return the event kind a subject carries."""
    tokens = subject.split(".")
    if tokens[0] == s.DLQ:
        if len(tokens) >= 2 and f"{s.DLQ}.{tokens[1]}" == s.DLQ_RETRIED:
            return RETRIED
        if subject == s.DLQ_PURGED:
            return PURGED
        return DEAD_LETTER if len(tokens) >= 2 and tokens[1] in _AGENT_NAMES else OTHER
    if tokens[0] == "control":
        return CONTROL
    prefix = ".".join(tokens[:2])
    return prefix if prefix in (SUBMITTED, *PIPELINE_KINDS) else OTHER


_AGENT_NAMES = frozenset(str(a) for a in AGENTS)

OPS_RECORDS = (f"{s.DLQ_RETRIED}.*", s.DLQ_RETRIED, s.DLQ_PURGED)
"""Subjects of the operator's own records on the DLQ stream."""


def subject_matches(pattern: str, subject: str) -> bool:
    """Return whether `subject` matches the NATS wildcard `pattern` (`*` one token, `>` rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _owner_patterns() -> tuple[tuple[str, Identity], ...]:
    pairs: list[tuple[str, Identity]] = [
        (pattern, identity) for identity, patterns in t.OUTPUTS.items() for pattern in patterns
    ]
    pairs += [(s.dead_letters(agent), agent) for agent in AGENTS]
    pairs += [(subject, Identity.OPS) for subject in OPS_RECORDS]
    pairs.append((s.CONTROL_ALL, Identity.OPS))
    return tuple(pairs)


OWNERS = _owner_patterns()
"""(subject pattern, the identity that publishes it), from the topology and the permissions."""


@lru_cache(maxsize=4096)
def owners_of(subject: str) -> frozenset[Identity]:
    """Return the identities that publish `subject` (empty for a subject nobody owns)."""
    return frozenset(identity for pattern, identity in OWNERS if subject_matches(pattern, subject))


def unsigned_allowed(subject: str) -> bool:
    """Only clients publish unsigned, and only submissions."""
    return subject_matches(s.every(s.INTENT_SUBMITTED), subject)
