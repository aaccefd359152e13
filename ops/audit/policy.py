"""Who may have said what: each subject's publishing identity, from the topology. Pure.

An event is trusted when its signature verifies, its signer is the identity that publishes its
subject (`contracts.topology.OUTPUTS`, `dlq.<agent>` for an agent's dead letters, ops for
`control.*` and its own `dlq.*` records), and the signer is the `producer` the event names.
Unsigned is allowed only for `intent.submitted.*`, which clients publish without signing. An
ops-signed message on another identity's subject is trusted only when an ops-signed retry
record vouches for exactly those bytes at that place (`tradeops dlq retry --payload`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bus.signing import SignatureStatus
from contracts import AGENTS, Identity
from contracts import subjects as s
from contracts import topology as t

OPS_RECORDS = ("dlq.retried", "dlq.purged")
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


@lru_cache(maxsize=4096)
def owners_of(subject: str) -> frozenset[Identity]:
    """Return the identities that publish `subject` (empty for a subject nobody owns)."""
    return frozenset(identity for pattern, identity in OWNERS if subject_matches(pattern, subject))


def unsigned_allowed(subject: str) -> bool:
    """Only clients publish unsigned, and only submissions."""
    return subject_matches(s.every(s.INTENT_SUBMITTED), subject)


@dataclass(frozen=True)
class Provenance:
    """What the replay knows about who published one message."""

    subject: str
    status: SignatureStatus | None
    """None when the message carries no signature headers."""
    signer: str | None
    producer: str | None
    """The event's `producer` field (None when it has none, e.g. a submission)."""
    vouched: bool = False
    """An ops retry record names these exact bytes at this place."""


def provenance_problem(p: Provenance) -> str | None:
    """Return what is wrong with who published the message, or None when it is trusted."""
    if p.status is None:
        if unsigned_allowed(p.subject):
            return None
        return f"missing signature: only client submissions may be unsigned, not {p.subject}"
    if p.status is SignatureStatus.UNKNOWN_SIGNER:
        return f"signed by {p.signer!r}, which is no known identity"
    if p.status is not SignatureStatus.VALID:
        return (
            f"signature {p.status} for signer {p.signer}: the stored bytes were altered or forged"
        )
    owners = owners_of(p.subject)
    if p.signer == Identity.OPS and Identity.OPS not in owners:
        if p.vouched:
            return None
        return (
            f"signed by ops, which does not publish {p.subject}, and no ops retry record "
            "vouches for these bytes"
        )
    if p.signer not in owners:
        named = ", ".join(sorted(owners)) or "nobody"
        return f"signed by {p.signer}, but {p.subject} is published by {named}"
    if p.producer is not None and p.producer != p.signer:
        return f"producer field says {p.producer!r} but the event is signed by {p.signer}"
    if p.producer is None and not unsigned_allowed(p.subject):
        return "the event names no producer"
    return None
