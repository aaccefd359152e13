"""`audit trail`: one intent's events across the streams, who signed each, and its verdict.

Built on `ops.trail` (the same streams, and its `Trail` for the events): each event also gets
its provenance (signature, and whether its signer may publish it) and its time since the
submission, and the chain is checked as `audit verify` checks it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from bus.replay import read_stream
from bus.signing import SignatureStatus, Verifier
from ops.audit.chains import Verdict, evaluate
from ops.audit.facts import RETRIED, SUBMITTED, Fact, fact_of
from ops.audit.report import AuditReport
from ops.audit.verify import judge_provenance
from ops.trail import TRAIL_STREAMS, Trail, TrailEvent


@dataclass
class TrailEntry:
    """One event of the intent, as the audit sees it."""

    fact: Fact
    stored_at: datetime
    signature: str
    body: dict[str, Any]
    since_submission_s: float = 0.0

    @property
    def producer(self) -> str:
        return self.fact.producer or self.fact.signer or "client"


@dataclass
class IntentAudit:
    intent_id: str
    entries: list[TrailEntry] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def trail(self) -> Trail:
        """The same events as an `ops.trail.Trail`."""
        return Trail(
            self.intent_id,
            [
                TrailEvent(
                    stream=e.fact.stream,
                    seq=e.fact.seq,
                    subject=e.fact.subject,
                    kind=e.fact.kind,
                    producer=e.producer,
                    stored_at=e.stored_at,
                    body=e.body,
                    signature=e.signature,
                )
                for e in self.entries
            ],
        )

    def to_json(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "intent_id": self.intent_id,
            "outcome": verdict.outcome if verdict else "unknown",
            "pending": verdict.pending if verdict else None,
            "problems": [
                {"stream": f.stream if f else None, "seq": f.seq if f else None, "what": what}
                for f, what in (verdict.problems if verdict else [])
            ],
            "events": [
                {
                    "stream": e.fact.stream,
                    "seq": e.fact.seq,
                    "subject": e.fact.subject,
                    "kind": e.fact.kind,
                    "producer": e.producer,
                    "signer": e.fact.signer,
                    "signature": e.signature,
                    "trusted": e.fact.trusted,
                    "problem": e.fact.problem,
                    "stored_at": e.stored_at.isoformat(),
                    "since_submission_ms": round(e.since_submission_s * 1000, 3),
                    "body": e.body,
                }
                for e in self.entries
            ],
        }

    def render(self) -> str:
        verdict = self.verdict
        head = f"intent {self.intent_id}: {verdict.outcome if verdict else 'no events'}"
        if verdict is not None and verdict.pending:
            head += f" ({verdict.pending})"
        lines = [head]
        for e in self.entries:
            mark = "" if e.fact.trusted else f"  !! {e.fact.problem}"
            lines.append(
                f"  {e.since_submission_s * 1000:>+10.1f} ms  {e.fact.stream:<7} "
                f"#{e.fact.seq:<6} {e.fact.kind:<19} by {e.producer:<9} [{e.signature}] "
                f"{e.fact.subject}{mark}"
            )
        problems = verdict.problems if verdict else []
        if problems:
            lines.append("problems:")
            lines += [
                f"  {f.stream} #{f.seq}: {what}" if f else f"  {what}" for f, what in problems
            ]
        else:
            lines.append("chain: OK" if verdict and verdict.outcome != "pending" else "chain: -")
        return "\n".join(lines)


async def audit_trail(nc: NATS, intent_id: uuid.UUID | str, verifier: Verifier) -> IntentAudit:
    """Return every stored event of `intent_id` with its provenance, timings and verdict."""
    wanted = str(intent_id)
    result = IntentAudit(wanted)
    facts: list[Fact] = []
    intent_of: dict[tuple[str, int], str | None] = {}
    statuses: dict[tuple[str, int], tuple[SignatureStatus, str | None]] = {}
    for stream in TRAIL_STREAMS:
        async for msg in read_stream(nc, stream):
            fact = fact_of(msg)
            intent_of[fact.key] = fact.intent_id
            if fact.intent_id != wanted and fact.kind != RETRIED:
                continue
            if fact.signed:
                statuses[fact.key] = verifier.check(msg.subject, msg.data, msg.headers)
            facts.append(fact)
            if fact.intent_id == wanted:
                status = statuses.get(fact.key, (None, None))[0]
                result.entries.append(
                    TrailEntry(fact, msg.timestamp, str(status or "unsigned"), _body(msg.data))
                )
    retried = judge_provenance(facts, statuses, AuditReport("trail"))
    mine = [f for f in facts if f.intent_id == wanted and f.trusted and f.kind != RETRIED]
    if result.entries:
        result.verdict = evaluate(wanted, mine, retried=retried, intent_of=intent_of, full=True)
    result.entries.sort(key=lambda e: e.stored_at)
    start = next((e for e in result.entries if e.fact.kind == SUBMITTED), None)
    origin = start or (result.entries[0] if result.entries else None)
    for e in result.entries:
        e.since_submission_s = (e.stored_at - origin.stored_at).total_seconds() if origin else 0
    return result


def _body(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return {"raw": data.decode("utf-8", "replace")}
    return body if isinstance(body, dict) else {"value": body}
