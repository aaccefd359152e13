"""One stored message as the audit sees it: its kind, intent, provenance and compared fields.

The kind comes from the subject (signed), never from the unsigned `Tradeops-Kind` header.

A submission without a usable `intent_id` goes by its public name,
`contracts.base.submission_ref(seq)`, as does the dead letter of one the ingestor refused. The id
the ingestor assigns when it accepts one, nobody else can compute (`agents.ingestor.ids`): that
intent is found by the submission's stream sequence instead (`join_submissions`), which the
ingestor's acceptance records as `submission_seq` and a dead letter as its origin.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeGuard

from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.replay import StoredMsg
from contracts import OrderType
from contracts import subjects as s
from contracts import topology as t
from contracts.base import submission_ref
from contracts.kinds import (
    ACCEPTED,
    CONTROL,
    DEAD_LETTER,
    FILLED,
    PIPELINE_KINDS,
    POSTED,
    PURGED,
    RETRIED,
    SUBMITTED,
    kind_of,
)
from contracts.records import DeadLetterRetried, DeadLettersPurged

Terms = tuple[str, str, str, Decimal, str, Decimal | None]
"""(account, symbol, side, quantity, order_type, limit_price) of an intent."""
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TERM_NAMES = ("account", "symbol", "side", "quantity", "order_type", "limit_price")


def submission_name(seq: int) -> str:
    """Return the public name of SUBMISSIONS #`seq` (`contracts.base.submission_ref`)."""
    return str(submission_ref(seq))


def as_uuid(value: object) -> str | None:
    """Return `value` as a canonical UUID string, None when it is not a UUID."""
    if isinstance(value, str) and len(value) == 36 and _CANONICAL.fullmatch(value):
        return value  # as pydantic writes them: no parsing needed
    try:
        return str(uuid.UUID(str(value))) if value is not None else None
    except ValueError:
        return None


def decimal_or_none(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def terms_of(body: object) -> Terms | None:
    """Return the compared fields of an intent (or a submission), None when unreadable."""
    if not isinstance(body, Mapping):
        return None
    quantity = decimal_or_none(body.get("quantity"))
    limit = body.get("limit_price")
    fields = (body.get("account"), body.get("symbol"), body.get("side"))
    if quantity is None or not all(isinstance(f, str) for f in fields):
        return None
    account, symbol, side = (str(f) for f in fields)
    order_type = str(body.get("order_type") or OrderType.MARKET)
    return (account, symbol, side, quantity, order_type, decimal_or_none(limit))


Key = tuple[str, int]
"""Where a message is stored: (stream, sequence)."""


@dataclass(slots=True)
class Fact:
    """What the audit keeps of one stored message."""

    stream: str
    seq: int
    subject: str
    kind: str
    stored_at: str
    signer: str | None
    signed: bool
    producer: str | None
    event_id: str | None = None
    causation_id: str | None = None
    intent_id: str | None = None
    terms: Terms | None = None
    content: bytes = b""
    """Digest of the payload without its `ts`: equal for a re-emission of the same event."""
    detail: dict[str, Any] = field(default_factory=dict)
    data: bytes | None = None
    """The payload, kept only where later checks parse it (fills, postings, ops repairs)."""
    trusted: bool = False
    problem: str | None = None

    @property
    def key(self) -> Key:
        return (self.stream, self.seq)


def _content(data: bytes, body: Mapping[str, Any] | None) -> bytes:
    ts = body.get("ts") if body is not None else None
    if isinstance(ts, str):
        data = data.replace(f'"ts":"{ts}"'.encode(), b"", 1)
    return hashlib.blake2b(data, digest_size=8).digest()


def fact_of(msg: StoredMsg) -> Fact:
    """Return the fact of one stored message (never raises on a malformed payload)."""
    try:
        loaded = json.loads(msg.data)
    except (ValueError, RecursionError):
        loaded = None
    body: dict[str, Any] | None = loaded if isinstance(loaded, dict) else None
    signer = msg.headers.get(SIGNER_HEADER)
    producer = body.get("producer") if body is not None else None
    fact = Fact(
        stream=msg.stream,
        seq=msg.seq,
        subject=msg.subject,
        kind=kind_of(msg.subject),
        stored_at=msg.time,
        signer=signer,
        signed=bool(signer and msg.headers.get(SIGNATURE_HEADER)),
        producer=producer if isinstance(producer, str) else None,
        content=_content(msg.data, body),
    )
    if body is not None:
        fact.event_id = as_uuid(body.get("event_id"))
        fact.causation_id = as_uuid(body.get("causation_id"))
    _describe(fact, body, msg)
    return fact


def _describe(fact: Fact, body: dict[str, Any] | None, msg: StoredMsg) -> None:
    kind = fact.kind
    if kind == CONTROL:
        fact.data = msg.data  # the trading-state rule reads each control message (ops.audit.halts)
        return
    if kind == SUBMITTED:
        fact.intent_id = as_uuid(body.get("intent_id")) if body is not None else None
        if fact.intent_id is None and fact.stream == t.SUBMISSIONS:
            fact.intent_id = submission_name(fact.seq)  # until `join_submissions` finds better
            fact.detail["unnamed"] = True
        fact.terms = terms_of(body)
        if fact.signed:
            fact.data = msg.data  # an ops-signed repair is checked against its retry record
        return
    if body is None:
        return
    if kind in PIPELINE_KINDS:
        fact.intent_id = as_uuid(body.get("intent_id"))
        fact.terms = terms_of(body.get("intent"))
        if kind == ACCEPTED and isinstance(body.get("submission_seq"), int):
            fact.detail["submission_seq"] = body["submission_seq"]
        elif kind == FILLED:
            fact.detail["fill_quantity"] = decimal_or_none(body.get("fill_quantity"))
            fact.data = msg.data
        elif kind == POSTED:
            fact.detail["account"] = body.get("account")
            fact.detail["lines"] = body.get("lines") or []
            fact.data = msg.data
        if fact.signer == "ops":
            fact.data = msg.data
    elif kind == DEAD_LETTER:
        origin_subject = str(body.get("original_subject", ""))
        origin = (str(body.get("stream", "")), _int(body.get("stream_seq")))
        fact.intent_id = as_uuid(body.get("intent_id"))
        if fact.intent_id is None and _is_submission(origin[0], origin_subject):
            # the name the ingestor filed it under (only it publishes `dlq.ingestor.*`)
            named = as_uuid(s.last_token(fact.subject))
            fact.intent_id = named or submission_name(origin[1])
            fact.detail["unnamed"] = True
        fact.detail |= {"origin": origin, "origin_subject": origin_subject}
        fact.detail["reason"] = str(body.get("reason", ""))
    elif kind == RETRIED:
        try:
            record = DeadLetterRetried.model_validate(body)
        except ValueError:
            return
        fact.detail["record"] = record
        fact.intent_id = None if record.intent_id is None else str(record.intent_id)
        if fact.intent_id is None and _is_submission(
            record.original_stream, record.original_subject
        ):
            fact.intent_id = submission_name(record.original_stream_seq)
    elif kind == PURGED:
        try:
            fact.detail["record"] = DeadLettersPurged.model_validate(body)
        except ValueError:
            return


def _is_submission(stream: str, subject: str) -> bool:
    return stream == t.SUBMISSIONS and subject.startswith(f"{SUBMITTED}.")


def purged_letters(fact: Fact) -> list[Fact]:
    """Return a dead-letter fact for each dead letter a trusted purge record lists."""
    record = fact.detail.get("record")
    if not isinstance(record, DeadLettersPurged):
        return []
    out: list[Fact] = []
    for letter in record.letters:
        iid = None if letter.intent_id is None else str(letter.intent_id)
        if iid is None and _is_submission(letter.original_stream, letter.original_subject):
            iid = submission_name(letter.original_stream_seq)
        out.append(
            Fact(
                stream=t.DLQ,
                seq=letter.dlq_seq,
                subject=s.dead_letters(letter.agent),
                kind=DEAD_LETTER,
                stored_at=fact.stored_at,
                signer=str(letter.agent),
                signed=True,
                producer=str(letter.agent),
                intent_id=iid,
                detail={
                    "origin": (letter.original_stream, letter.original_stream_seq),
                    "origin_subject": letter.original_subject,
                    "reason": letter.reason,
                    "purged": True,
                },
                trusted=True,
            )
        )
    return out


def join_submissions(facts: Sequence[Fact]) -> None:
    """Give each submission that names no intent the intent of the trusted events naming it.

    Run after provenance (`ops.audit.policy.judge_provenance`): only trusted events are believed.
    The ingestor's acceptance names the submission by `submission_seq`, a dead letter by its
    origin. The acceptance wins: a dead letter after it (`max_deliveries` of an acknowledgement
    that never arrived) then belongs to the accepted intent too. A submission nothing names keeps
    its public name. Linear in `facts`; only submissions without an id, and their dead letters
    (found under the same public name), change.
    """
    accepted: dict[int, str] = {}
    refused: dict[int, str] = {}
    for fact in facts:
        if not fact.trusted:
            continue
        seq = fact.detail.get("submission_seq")
        if fact.kind == ACCEPTED and isinstance(seq, int) and fact.intent_id is not None:
            accepted.setdefault(seq, fact.intent_id)
        for letter in purged_letters(fact) if fact.kind == PURGED else [fact]:
            origin = letter.detail.get("origin")
            if letter.kind == DEAD_LETTER and letter.intent_id and _from_submissions(origin):
                refused.setdefault(origin[1], letter.intent_id)
    for fact in facts:
        if not fact.detail.get("unnamed"):
            continue
        if fact.kind == SUBMITTED:
            fact.intent_id = accepted.get(fact.seq) or refused.get(fact.seq) or fact.intent_id
        elif _from_submissions(origin := fact.detail.get("origin")) and origin[1] in accepted:
            fact.intent_id = accepted[origin[1]]  # a dead letter of a submission without an id


def _from_submissions(origin: object) -> TypeGuard[tuple[str, int]]:
    return isinstance(origin, tuple) and len(origin) == 2 and origin[0] == t.SUBMISSIONS


def describe_terms(terms: Terms) -> dict[str, str | None]:
    return {name: None if v is None else str(v) for name, v in zip(TERM_NAMES, terms, strict=True)}
