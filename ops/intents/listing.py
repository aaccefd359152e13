"""`intent list`: the intents that entered the pipeline in a time window and how each ended.

The join is by subject, never by a header or payload field:
- an intent enters the window with its acceptance (`intent.accepted.<SYMBOL>.<id>`) or, when the
  ingestor refused its submission, with that dead letter (`dlq.ingestor.<id>`);
- its terminal events (`contracts.kinds.TERMINAL`: `risk.rejected`, `order.rejected`,
  `ledger.posted`, dead letters) are joined by the subject's last token, with the `dlq retry`
  records (`dlq.retried.<id>`), so a retried dead letter no longer ends its intent;
- each event's signature is verified and its signer must own the subject (`ops.audit.policy`);
  the outcome is the audit's own rule (`ops.audit.chains.evaluate`) over trusted events only,
  so a forgery is listed as untrusted and changes no outcome.

Cost: one subject-filtered batched direct get per stream (INTENTS, RISK, ORDERS, LEDGER, DLQ)
from the window's start time, which the server seeks to by time: what is read is what was
stored in the window on those subjects, never the history before it. The window is searched
newest part first (the last 5 minutes, then 4x further back each pass, up to `--since`; each
pass reads only the slice before the last, so the window is read once) and stops once
`--limit` intents match: a default listing on a busy desk reads minutes, not the hour.
Signatures are verified only for the intents examined, newest first, until the limit is met;
one more direct get per `dlq retry` record in the window. An intent accepted before the window
is not listed, even if it ended inside it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncGenerator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from nats.aio.client import Client as NATS

from bus.headers import SIGNATURE, SIGNER
from bus.replay import StoredMsg, read_batches, read_one
from bus.signing import SignatureStatus, Verifier
from contracts import subjects as s
from contracts.kinds import ACCEPTED, DEAD_LETTER, POSTED, RETRIED, SUBMITTED, kind_of
from ops.audit.chains import evaluate
from ops.audit.facts import Fact, Terms, as_uuid, fact_of, terms_of
from ops.audit.policy import judge_provenance
from ops.audit.report import AuditReport
from ops.intents.query import IntentListing, IntentQuery, IntentRow, ShownEvent

FIRST_SPAN = timedelta(minutes=5)
"""The newest part of the window read first; each further pass reads 4x as far back."""
WIDEN = 4

Key = tuple[str, int]
Statuses = dict[Key, tuple[SignatureStatus, str | None]]
Originals = dict[Key, bytes]
"""Stored submissions by (stream, sequence), read back for the dead letters that refer to them."""


# -- the join (pure but for the verifier) ------------------------------------------------------


def group_by_intent(msgs: Iterable[StoredMsg]) -> dict[str, list[StoredMsg]]:
    """Group messages by the intent id their subject ends with (ids that are no UUID dropped)."""
    out: dict[str, list[StoredMsg]] = {}
    for msg in msgs:
        iid = as_uuid(s.last_token(msg.subject))
        if iid is not None:
            out.setdefault(iid, []).append(msg)
    return out


def entry_of(facts: Sequence[Fact]) -> Fact | None:
    """The event by which an intent entered the pipeline: its acceptance, else the dead letter
    of its submission (the ingestor refused it)."""
    accepted = [f for f in facts if f.kind == ACCEPTED]
    if accepted:
        return accepted[0]
    refused = [
        f
        for f in facts
        if f.kind == DEAD_LETTER
        and str(f.detail.get("origin_subject", "")).startswith(f"{SUBMITTED}.")
    ]
    return refused[0] if refused else None


def judge_intent(
    iid: str,
    msgs: Sequence[StoredMsg],
    statuses: Statuses,
    intent_of: dict[Key, str | None] | None = None,
    originals: Originals | None = None,
) -> IntentRow | None:
    """Return the row of one intent from its stored messages in the window (None when it did
    not enter in the window). `statuses` holds the signature check of every signed message."""
    facts: list[Fact] = []
    stored: dict[Key, StoredMsg] = {}
    for msg in sorted(msgs, key=lambda m: (m.timestamp, m.stream, m.seq)):
        fact = fact_of(msg)
        if fact.key not in stored:
            stored[fact.key] = msg
            facts.append(fact)
    retried = judge_provenance(facts, statuses, AuditReport("intent list"))
    for fact in facts:
        if fact.trusted and fact.intent_id != iid:  # signed, but its body names another intent
            named = f"intent {fact.intent_id}" if fact.intent_id else "no intent"
            fact.trusted, fact.problem = False, f"its subject names {iid}, its body {named}"
    mine = [f for f in facts if f.trusted and f.kind != RETRIED]
    entry = entry_of(mine) or entry_of(facts)
    if entry is None:
        return None
    row = IntentRow(iid, stored[entry.key].timestamp, _symbol_of(entry))
    terms = entry.terms or _submitted_terms(stored[entry.key], originals or {})
    if terms is not None:
        row.account, row.side, row.quantity = terms[0], terms[2], str(terms[3])
        row.symbol = row.symbol or terms[1]
    verdict = evaluate(iid, mine, retried=retried, intent_of=intent_of or {}, full=True)
    row.outcome = verdict.outcome
    row.terminals = len(verdict.terminals)
    if verdict.terminals:
        end = verdict.terminals[0]
        row.ended_at = stored[end.key].timestamp
        row.reasons = _reasons(stored[end.key].data)
        if end.kind == POSTED and row.account is None:
            row.account = str(end.detail.get("account") or "") or None
    for fact in facts:
        status = statuses.get(fact.key, (None, fact.signer))[0]
        row.events.append(
            ShownEvent(fact.stream, fact.seq, fact.subject, fact.kind,
                       stored[fact.key].timestamp, fact.signer,
                       str(status or "unsigned"), fact.problem)
        )  # fmt: skip
    return row


def _symbol_of(entry: Fact) -> str | None:
    if entry.kind == ACCEPTED:
        parts = s.event_parts(entry.subject)
        return parts[1] if parts else None
    origin = str(entry.detail.get("origin_subject", ""))
    return s.last_token(origin) if origin.count(".") == 2 else None


def _submitted_terms(dead_letter: StoredMsg, originals: Originals) -> Terms | None:
    """The terms of a refused submission: from the bytes its dead letter carries (older ones),
    else from the submission it refers to, read back (`_referred_originals`)."""
    try:
        body = json.loads(dead_letter.data)
        if body.get("original_data_b64"):
            return terms_of(json.loads(base64.b64decode(body["original_data_b64"])))
        original = originals.get((body["stream"], body["stream_seq"]))
        return terms_of(json.loads(original)) if original is not None else None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def _referred(msg: StoredMsg) -> Key | None:
    """Where an ingestor dead letter's original is stored, when it does not carry it."""
    if kind_of(msg.subject) != DEAD_LETTER or not msg.subject.startswith("dlq.ingestor."):
        return None
    try:
        body = json.loads(msg.data)
        if body.get("original_data_b64"):
            return None
        return str(body["stream"]), int(body["stream_seq"])
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


async def _referred_originals(nc: NATS, msgs: Sequence[StoredMsg], timeout_s: float) -> Originals:
    """The submissions the window's ingestor dead letters refer to (one get per letter)."""
    places = [key for key in map(_referred, msgs) if key is not None]
    found = await asyncio.gather(*(read_one(nc, st, q, timeout_s=timeout_s) for st, q in places))
    return {place: got.data for place, got in zip(places, found, strict=True) if got is not None}


def _reasons(data: bytes) -> list[str]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return []
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("reasons"), list):
        return [str(r) for r in body["reasons"]]
    return [str(body["reason"])] if body.get("reason") else []


def check_signatures(msgs: Iterable[StoredMsg], verifier: Verifier, into: Statuses) -> None:
    """Verify each signed message not yet in `into` (the cache of this listing)."""
    for msg in msgs:
        key = (msg.stream, msg.seq)
        if key not in into and msg.headers.get(SIGNER) and msg.headers.get(SIGNATURE):
            into[key] = verifier.check(msg.subject, msg.data, msg.headers)


def select(
    msgs: Sequence[StoredMsg],
    query: IntentQuery,
    verifier: Verifier,
    statuses: Statuses | None = None,
    intent_of: dict[Key, str | None] | None = None,
    originals: Originals | None = None,
) -> tuple[list[IntentRow], bool]:
    """Return the newest `query.limit` matching intents of `msgs`, and whether more match."""
    statuses = {} if statuses is None else statuses
    grouped = group_by_intent(msgs)
    entered: dict[str, datetime] = {}
    for iid, group in grouped.items():
        times = {kind: [m.timestamp for m in group if kind_of(m.subject) == kind]
                 for kind in (ACCEPTED, DEAD_LETTER)}  # fmt: skip
        if first := min(times[ACCEPTED] or times[DEAD_LETTER], default=None):
            entered[iid] = first
    rows: list[IntentRow] = []
    for iid in sorted(entered, key=lambda i: entered[i], reverse=True):
        check_signatures(grouped[iid], verifier, statuses)
        row = judge_intent(iid, grouped[iid], statuses, intent_of, originals)
        if row is None or not query.matches(row):
            continue
        if len(rows) == query.limit:
            return rows, True
        rows.append(row)
    return rows, False


# -- reading the window --------------------------------------------------------------------------


async def read_window(
    nc: NATS,
    query: IntentQuery,
    start: datetime,
    end: datetime | None = None,
    *,
    timeout_s: float = 10.0,
) -> list[StoredMsg]:
    """Every acceptance, terminal event and dead letter stored from `start` until `end`."""

    async def read(stream: str, subject: str) -> list[StoredMsg]:
        out: list[StoredMsg] = []
        batches = cast(  # an async generator: closed at once when the slice ends early
            AsyncGenerator[list[StoredMsg], None],
            read_batches(nc, stream, subject=subject, start_time=start, timeout_s=timeout_s),
        )
        async with contextlib.aclosing(batches) as chunks:
            async for chunk in chunks:
                out += [
                    m for m in chunk if start <= m.timestamp and (end is None or m.timestamp < end)
                ]
                if end is not None and chunk[-1].timestamp >= end:
                    break
        return out

    batches = await asyncio.gather(*(read(stream, subj) for stream, subj in query.reads()))
    return [m for batch in batches for m in batch]


async def _retry_destinations(
    nc: NATS, msgs: Sequence[StoredMsg], timeout_s: float
) -> dict[Key, str | None]:
    """The intent of each message a retry record says it re-published (one get per record)."""
    places: list[Key] = []
    for msg in msgs:
        record = fact_of(msg).detail.get("record") if kind_of(msg.subject) == RETRIED else None
        if record is not None:
            places.append((record.published_stream, record.published_seq))
    found = await asyncio.gather(*(read_one(nc, st, q, timeout_s=timeout_s) for st, q in places))
    return {
        place: fact_of(got).intent_id if got is not None else None
        for place, got in zip(places, found, strict=True)
    }


async def list_intents(
    nc: NATS,
    query: IntentQuery,
    verifier: Verifier,
    *,
    now: datetime | None = None,
    timeout_s: float = 10.0,
) -> IntentListing:
    """Return the newest intents that entered since `query.since` and match the query.

    Each pass reads only the slice before the one already read: the window is read once."""
    now = now or datetime.now(UTC)
    if query.since >= now:  # nothing yet (and past 2262 the server's nanoseconds wrap around)
        return IntentListing(query, query.since, [], False)
    statuses: Statuses = {}
    intent_of: dict[Key, str | None] = {}
    originals: Originals = {}
    msgs: list[StoredMsg] = []
    span, end = FIRST_SPAN, None
    while True:
        start = max(query.since, now - span)
        older = await read_window(nc, query, start, end, timeout_s=timeout_s)
        intent_of |= await _retry_destinations(nc, older, timeout_s)
        originals |= await _referred_originals(nc, older, timeout_s)
        msgs = older + msgs
        rows, more = select(msgs, query, verifier, statuses, intent_of, originals)
        if len(rows) >= query.limit or start <= query.since:
            return IntentListing(query, start, rows, more)
        span, end = span * WIDEN, start
