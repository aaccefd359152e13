"""The one answer to "what happened to intent X": its events, who signed each, its verdict.

`intent show`, `intent submit --wait`, `audit trail` and the demo all read an intent through
`find_trail`. It trusts only what the server enforces and what is signed:
- an event belongs to intent X because its subject's last token is X (`intent.accepted.AAPL.X`,
  `dlq.ingestor.X`); only the identity that owns a subject may publish on it, so a client's
  forged `Tradeops-Intent-Id` header or payload id puts nothing under someone else's intent;
- a submission is read only when an agent's signed event names its stream sequence (the
  acceptance's `submission_seq`, or the dead letter of that submission); it belongs to X when it
  names X, or, naming no intent, when that trusted event is X's (`facts.join_submissions`);
- each event's signature is verified and its signer must own the subject (`contracts.kinds`);
  the verdict (`ops.audit.chains.evaluate`, the one terminal-outcome rule) counts only trusted
  events, so a foreign dead letter or a forgery is listed, marked, and changes nothing.

Cost per lookup: per trail stream, one `multi_last` direct get filtered by the intent's subject
token (JetStream's own subject index answers it without reading other intents' messages), then
one read of each subject found (usually one message), plus one direct get per referenced
submission: about a dozen concurrent round trips, whatever the history. What it costs the
server: one subject per event in the stream's subject index (about 58 bytes on disk each and
a few hundred bytes of memory).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from bus.replay import StoredMsg, read_all, read_latest, read_one
from bus.signing import SignatureStatus, Verifier
from contracts import subjects as s
from contracts import topology as t
from contracts.kinds import ACCEPTED, DEAD_LETTER, RETRIED, SUBMITTED, TERMINAL, Outcome
from ops.audit.chains import Verdict, evaluate
from ops.audit.facts import Fact, fact_of, join_submissions
from ops.audit.policy import judge_provenance
from ops.audit.report import AuditReport

INDEXED_STREAMS: tuple[tuple[str, str], ...] = (
    (t.INTENTS, "intent.{}"),
    (t.RISK, "risk.{}"),
    (t.ORDERS, "order.{}"),
    (t.LEDGER, "ledger.{}"),
)
"""(stream, filter template) of the streams whose subjects end with the intent id."""


class NotAnIntentId(ValueError):
    """The text given is not an intent id (a UUID in any spelling the ingestor accepts)."""


def canonical_intent_id(text: str | uuid.UUID) -> str:
    """Return the canonical spelling of an intent id (upper case, braces, `urn:uuid:` allowed)."""
    if isinstance(text, uuid.UUID):
        return str(text)
    try:
        return str(uuid.UUID(text.strip()))
    except (ValueError, AttributeError):
        raise NotAnIntentId(
            f"{text[:80]!r} is not an intent id; an intent id is a UUID, "
            "e.g. 3f2b8c1e-6a4d-4c2b-9e1f-0a7d5b3c9e21"
        ) from None


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

    @property
    def kind(self) -> str:
        return self.fact.kind


@dataclass
class IntentTrail:
    """Every stored event of one intent and the verdict on its chain."""

    intent_id: str
    entries: list[TrailEntry] = field(default_factory=list)
    verdict: Verdict | None = None

    @property
    def outcome(self) -> str:
        if self.verdict is None:
            return str(Outcome.UNKNOWN if not self.entries else Outcome.PENDING)
        return self.verdict.outcome

    @property
    def terminal(self) -> bool:
        return self.outcome in {str(o) for o in TERMINAL.values()} | {Outcome.HANDED_OVER}

    @property
    def reasons(self) -> list[str]:
        """Why the intent ended as it did (the reasons of its one trusted terminal event)."""
        if self.verdict is None or not self.verdict.terminals:
            return []
        end = self.verdict.terminals[0]
        body = next((e.body for e in self.entries if e.fact.key == end.key), {})
        if "reasons" in body:
            return [str(r) for r in body["reasons"]]
        return [str(body["reason"])] if body.get("reason") else []

    @property
    def problems(self) -> list[tuple[Fact | None, str]]:
        return self.verdict.problems if self.verdict else []

    def to_json(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "intent_id": self.intent_id,
            "outcome": self.outcome,
            "reasons": self.reasons,
            "pending": verdict.pending if verdict else None,
            "problems": [
                {"stream": f.stream if f else None, "seq": f.seq if f else None, "what": what}
                for f, what in self.problems
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


async def find_trail(
    nc: NATS, intent_id: str | uuid.UUID, verifier: Verifier, *, timeout_s: float = 5.0
) -> IntentTrail:
    """Return every stored event of `intent_id`, its provenance, timings and verdict.

    Raises `NotAnIntentId` for text that is no UUID."""
    wanted = canonical_intent_id(intent_id)
    reads = [
        _read_subjects(nc, stream, template.format(f"*.*.{wanted}"), timeout_s)
        for stream, template in INDEXED_STREAMS
    ]
    reads.append(_read_subjects(nc, t.DLQ, s.dead_letters_of(wanted), timeout_s))
    found = [m for batch in await asyncio.gather(*reads) for m in batch]
    msgs = found + await _referenced(nc, found, timeout_s)
    return judge(wanted, msgs, verifier, intent_of=await _destinations(nc, msgs, timeout_s))


async def _read_subjects(nc: NATS, stream: str, pattern: str, timeout_s: float) -> list[StoredMsg]:
    """Every stored message on the subjects matching `pattern`: the subject index names the
    subjects (their last messages), then each literal subject is read whole, so an event
    stored twice on one subject (a forgery, a re-publish) is not hidden behind the last."""
    latest = await read_latest(nc, stream, pattern, timeout_s=timeout_s)
    subjects = sorted({m.subject for m in latest})
    every = await asyncio.gather(
        *(read_all(nc, stream, subject, timeout_s=timeout_s) for subject in subjects)
    )
    return [m for msgs in every for m in msgs]


async def _referenced(nc: NATS, found: list[StoredMsg], timeout_s: float) -> list[StoredMsg]:
    """Return the submissions that the intent's own events name by stream sequence."""
    seqs: set[int] = set()
    for msg in found:
        fact = fact_of(msg)
        if fact.kind == ACCEPTED and isinstance(fact.detail.get("submission_seq"), int):
            seqs.add(fact.detail["submission_seq"])
        elif fact.kind == DEAD_LETTER and fact.detail.get("origin", ("", 0))[0] == t.SUBMISSIONS:
            seqs.add(int(fact.detail["origin"][1]))
    got = await asyncio.gather(*(read_one(nc, t.SUBMISSIONS, q, timeout_s=timeout_s) for q in seqs))
    return [m for m in got if m is not None]


async def _destinations(
    nc: NATS, msgs: list[StoredMsg], timeout_s: float
) -> dict[tuple[str, int], str | None]:
    """Return the intent of each message a retry record says it re-published."""
    places: set[tuple[str, int]] = set()
    for msg in msgs:
        fact = fact_of(msg)
        record = fact.detail.get("record")
        if fact.kind == RETRIED and record is not None:
            places.add((record.published_stream, record.published_seq))
    out: dict[tuple[str, int], str | None] = {}
    for stream, seq in places:
        got = await read_one(nc, stream, seq, timeout_s=timeout_s)
        out[(stream, seq)] = fact_of(got).intent_id if got is not None else None
    return out


def judge(
    wanted: str,
    msgs: list[StoredMsg],
    verifier: Verifier,
    *,
    intent_of: dict[tuple[str, int], str | None] | None = None,
) -> IntentTrail:
    """Return the trail of `wanted` from its stored messages (pure but for the verifier)."""
    result = IntentTrail(wanted)
    facts: list[Fact] = []
    known: dict[tuple[str, int], str | None] = dict(intent_of or {})
    statuses: dict[tuple[str, int], tuple[SignatureStatus, str | None]] = {}
    stored: dict[tuple[str, int], StoredMsg] = {}
    for msg in sorted(msgs, key=lambda m: m.timestamp):
        fact = fact_of(msg)
        if fact.key in stored:
            continue
        stored[fact.key] = msg
        if fact.signed:
            statuses[fact.key] = verifier.check(msg.subject, msg.data, msg.headers)
        facts.append(fact)
    retried = judge_provenance(facts, statuses, AuditReport("trail"))
    join_submissions(facts)
    for fact in facts:
        known.setdefault(fact.key, fact.intent_id)
    for fact in facts:
        if fact.intent_id != wanted:
            continue
        status = statuses.get(fact.key, (None, None))[0]
        msg = stored[fact.key]
        result.entries.append(
            TrailEntry(fact, msg.timestamp, str(status or "unsigned"), _body(msg.data))
        )
    mine = [f for f in facts if f.intent_id == wanted and f.trusted and f.kind != RETRIED]
    if mine:
        result.verdict = evaluate(wanted, mine, retried=retried, intent_of=known, full=True)
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
