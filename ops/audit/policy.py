"""Who may have said what: each subject's publishing identity, from the topology. Pure.

An event is trusted when its signature verifies, its signer is the identity that publishes its
subject (`contracts.topology.OUTPUTS`, `dlq.<agent>` for an agent's dead letters, ops for
`control.*` and its own `dlq.*` records), and the signer is the `producer` the event names.
Unsigned is allowed only for `intent.submitted.*`, which clients publish without signing. An
ops-signed message on another identity's subject is trusted only when an ops-signed retry
record vouches for exactly those bytes at that place (`tradeops dlq retry --payload`).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from bus.signing import SignatureStatus
from contracts import Identity
from contracts import subjects as s
from contracts.kinds import RETRIED, owners_of, unsigned_allowed
from contracts.records import DeadLetterRetried
from ops.audit.facts import Fact, Key
from ops.audit.report import AuditReport, Check


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


def judge_provenance(
    facts: list[Fact],
    results: dict[Key, tuple[SignatureStatus, str | None]],
    report: AuditReport,
) -> dict[int, list[Key]]:
    """Mark each fact trusted or not; return where each retried dead letter went."""
    vouched: dict[Key, str] = {}
    retried: dict[int, list[Key]] = defaultdict(list)

    def judge(fact: Fact) -> None:
        status, signer = results.get(fact.key, (None, fact.signer))
        if status is None and not fact.signed and fact.subject in s.CONTROL_SUBJECTS:
            # only ops may publish control.*: an unsigned kill is an emergency stop from any NATS
            # client; an unsigned resume or reduce takes no effect (contracts.control)
            kill = fact.subject == s.CONTROL_KILL
            fact.problem, fact.trusted = None, kill
            report.signatures["unsigned kill" if kill else "unsigned, ignored"] += 1
            what = (
                "kill authorized by permissions, unsigned"
                if kill
                else f"unsigned {fact.subject} ignored: it took no effect"
            )
            report.warn(Check.SIGNATURE, what, stream=fact.stream, seq=fact.seq)
            return
        if fact.signed and status is None:
            status = SignatureStatus.INVALID  # never verified: cannot be trusted
        ops_bytes = fact.data if signer == "ops" and fact.data is not None else None
        where = vouched.get(fact.key)
        check = Provenance(
            fact.subject,
            status,
            signer,
            fact.producer,
            vouched=ops_bytes is not None and where == hashlib.sha256(ops_bytes).hexdigest(),
        )
        fact.problem = provenance_problem(check)
        fact.trusted = fact.problem is None
        if status is None:
            label = "unsigned" if unsigned_allowed(fact.subject) else "missing"
        else:
            label = str(status)
        report.signatures[label] += 1
        if fact.problem is not None:
            kind = Check.PROVENANCE if status is SignatureStatus.VALID else Check.SIGNATURE
            report.error(kind, fact.problem, stream=fact.stream, seq=fact.seq,
                         intent_id=fact.intent_id)  # fmt: skip

    records = [f for f in facts if f.kind == RETRIED]
    for fact in records:  # first: the retry records vouch for ops-signed repairs
        judge(fact)
        record = fact.detail.get("record")
        if fact.trusted and isinstance(record, DeadLetterRetried):
            place = (record.published_stream, record.published_seq)
            vouched[place] = record.payload_sha256
            retried[record.dlq_seq].append(place)
    for fact in facts:
        if fact.kind != RETRIED:
            judge(fact)
    return retried
