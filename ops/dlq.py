"""Dead letters for the operator: list, show, retry (the original or repaired bytes), purge.

The DLQ stream holds each agent's `DeadLetter` events on `dlq.<agent>.<intent id>`; a dead
letter's id is
its DLQ stream sequence. Every operator action is itself recorded on the DLQ stream, signed
with the ops key: `dlq.retried` (`DeadLetterRetried`: what was re-published where, with the
SHA-256 of the original and of the published bytes) and `dlq.purged` (`DeadLettersPurged`:
which dead letters were removed). `tradeops audit verify` reads these records: a retried dead
letter is no longer an intent's terminal outcome, and an ops-signed repair is trusted only
when its record names exactly its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from nats.aio.client import Client as NATS

from bus import Emit, Publisher, Signer, Verifier
from bus.deadletter import intent_id_hint
from bus.headers import DLQ_RETRY
from bus.headers import INTENT as INTENT_HEADER
from bus.headers import MSG_ID as MSG_ID_HEADER
from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.replay import StoredMsg, read_stream
from contracts import DeadLetter, Identity, parse
from contracts import subjects as s
from contracts import topology as t
from contracts.kinds import DEAD_LETTER, kind_of
from contracts.records import DeadLetterRetried, DeadLettersPurged, PurgedLetter

RETRIED_SUBJECT = s.DLQ_RETRIED
PURGED_SUBJECT = s.DLQ_PURGED
RETRY_HEADER = DLQ_RETRY
LETTERS_PER_RECORD = 1000


class DlqError(Exception):
    """A dead-letter command cannot be carried out; `code` names why."""

    code = "dlq_error"


class NotFound(DlqError):
    code = "not_found"


class NotADeadLetter(DlqError):
    code = "not_a_dead_letter"


class AlreadyRetried(DlqError):
    code = "already_retried"


class OriginalGone(DlqError):
    code = "original_gone"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_dead_letter_subject(subject: str) -> bool:
    return kind_of(subject) == DEAD_LETTER


@dataclass
class StoredDeadLetter:
    """A dead letter as the DLQ stream holds it, with the retries recorded for it."""

    seq: int
    stored_at: datetime
    subject: str
    letter: DeadLetter
    headers: dict[str, str]
    signature: str = "unchecked"
    retries: list[DeadLetterRetried] = field(default_factory=list)
    referred: bytes | None = None
    """The original read back from where the dead letter refers to it (`load_original`)."""

    @property
    def original(self) -> bytes:
        """The dead-lettered bytes: carried (older dead letters) or read back and checked."""
        if self.letter.original_data_b64:
            return base64.b64decode(self.letter.original_data_b64)
        if self.referred is None:
            raise OriginalGone(
                f"DLQ #{self.seq}: its original, {self.letter.stream} "
                f"#{self.letter.stream_seq}, is no longer stored (removed by the stream's "
                "limits) or does not match the dead letter's SHA-256"
            )
        return self.referred


async def load_original(nc: NATS, stored: StoredDeadLetter) -> None:
    """Read a dead letter's original back from its stream; keep it only if its digest matches."""
    letter = stored.letter
    if letter.original_data_b64 or not letter.stream:
        return
    found = await first_message(nc, letter.stream, start_seq=letter.stream_seq)
    if found is None or found.seq != letter.stream_seq:
        return
    if letter.original_sha256 is None or sha256(found.data) == letter.original_sha256:
        stored.referred = found.data


def _signature(verifier: Verifier | None, msg: StoredMsg) -> str:
    if verifier is None:
        return "unchecked"
    return str(verifier.check(msg.subject, msg.data, msg.headers)[0])


def _as_letter(msg: StoredMsg, verifier: Verifier | None) -> StoredDeadLetter:
    return StoredDeadLetter(
        seq=msg.seq,
        stored_at=msg.timestamp,
        subject=msg.subject,
        letter=parse(DeadLetter, msg.data),
        headers=msg.headers,
        signature=_signature(verifier, msg),
    )


async def first_message(nc: NATS, stream: str, **where: Any) -> StoredMsg | None:
    """Return the first stored message at or after a sequence or time (None: none)."""
    messages = cast(AsyncGenerator[StoredMsg, None], read_stream(nc, stream, batch=1, **where))
    async with aclosing(messages):
        async for msg in messages:
            return msg
    return None


async def retry_records(nc: NATS) -> dict[int, list[DeadLetterRetried]]:
    """Return the recorded retries by dead letter (DLQ sequence)."""
    out: dict[int, list[DeadLetterRetried]] = {}
    async for msg in read_stream(nc, t.DLQ, subject=f"{RETRIED_SUBJECT}.*"):
        record = DeadLetterRetried.model_validate_json(msg.data)
        out.setdefault(record.dlq_seq, []).append(record)
    return out


async def list_dead_letters(
    nc: NATS, *, agent: Identity | None = None, verifier: Verifier | None = None
) -> list[StoredDeadLetter]:
    """Return the dead letters still in the DLQ stream (purged ones are gone), oldest first."""
    subject = s.dead_letters(agent) if agent is not None else f"{s.DLQ}.>"
    retries = await retry_records(nc)
    letters: list[StoredDeadLetter] = []
    async for msg in read_stream(nc, t.DLQ, subject=subject):
        if is_dead_letter_subject(msg.subject):
            letter = _as_letter(msg, verifier)
            letter.retries = retries.get(msg.seq, [])
            letters.append(letter)
    return letters


async def get_dead_letter(nc: NATS, seq: int, verifier: Verifier | None = None) -> StoredDeadLetter:
    """Return the dead letter stored at DLQ sequence `seq`."""
    found = await first_message(nc, t.DLQ, start_seq=seq)
    if found is None or found.seq != seq:
        raise NotFound(f"DLQ #{seq} does not exist (purged, or never written); see `dlq list`")
    if not is_dead_letter_subject(found.subject):
        raise NotADeadLetter(f"DLQ #{seq} is a {found.subject} record, not a dead letter")
    letter = _as_letter(found, verifier)
    letter.retries = (await retry_records(nc)).get(seq, [])
    await load_original(nc, letter)
    return letter


@dataclass(frozen=True)
class RetryOutcome:
    letter: StoredDeadLetter
    record: DeadLetterRetried
    record_seq: int


def retry_headers(
    letter: DeadLetter, seq: int, payload: bytes, repaired: bool, signer: Signer
) -> dict[str, str]:
    """Return the headers of the re-published message.

    The original bytes keep their original headers, signature included (it covers only the
    subject and the bytes, so it still verifies); repaired bytes are signed by ops instead.
    """
    headers = {
        k: v
        for k, v in letter.original_headers.items()
        if not k.startswith("Nats-") and k != RETRY_HEADER
    }
    if repaired:
        headers.pop(SIGNER_HEADER, None)
        headers.pop(SIGNATURE_HEADER, None)
        headers |= signer.headers(letter.original_subject, payload)
        hint = intent_id_hint(payload)
        if hint is None:
            headers.pop(INTENT_HEADER, None)
        else:
            headers[INTENT_HEADER] = str(hint)
    headers[RETRY_HEADER] = str(seq)
    headers[MSG_ID_HEADER] = str(uuid.uuid4())
    return headers


async def retry_dead_letter(
    nc: NATS,
    signer: Signer,
    seq: int,
    *,
    payload: bytes | None = None,
    again: bool = False,
    requested_by: str = "",
) -> RetryOutcome:
    """Re-publish a dead letter's message (or `payload`, its repair) as ops, and record it."""
    stored = await get_dead_letter(nc, seq)
    if stored.retries and not again:
        last = stored.retries[-1]
        raise AlreadyRetried(
            f"DLQ #{seq} was already retried as {last.published_stream} #{last.published_seq}; "
            "pass --again to re-publish it once more"
        )
    letter, original = stored.letter, stored.original
    data = original if payload is None else payload
    repaired = payload is not None and payload != original
    headers = retry_headers(letter, seq, data, repaired, signer)
    js = nc.jetstream()
    ack = await js.publish(letter.original_subject, data, headers=headers)
    hint = intent_id_hint(data) if repaired else (letter.intent_id or intent_id_hint(data))
    record = DeadLetterRetried(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        dlq_seq=seq,
        agent=letter.agent,
        reason=letter.reason,
        intent_id=hint,
        original_subject=letter.original_subject,
        original_stream=letter.stream,
        original_stream_seq=letter.stream_seq,
        published_stream=ack.stream,
        published_seq=ack.seq,
        msg_id=headers[MSG_ID_HEADER],
        original_sha256=sha256(original),
        payload_sha256=sha256(data),
        repaired=repaired,
        requested_by=requested_by,
    )
    record_ack = await (
        await Publisher(js, signer).start(Emit(s.dlq_retried(record.intent_id), record))
    )
    return RetryOutcome(stored, record, record_ack.seq)


@dataclass(frozen=True)
class PurgePlan:
    before: datetime
    below_seq: int
    letters: list[StoredDeadLetter]


@dataclass(frozen=True)
class PurgeOutcome:
    removed: int
    by_agent: dict[str, int]
    record_seqs: list[int]


async def plan_purge(nc: NATS, before: datetime) -> PurgePlan:
    """Find the dead letters stored before `before` (the DLQ stream is in time order)."""
    first = await first_message(nc, t.DLQ, start_time=before)
    if first is not None:
        below = first.seq
    else:
        info = await nc.jetstream().stream_info(t.DLQ)
        below = info.state.last_seq + 1
    letters = [x for x in await list_dead_letters(nc) if x.seq < below]
    return PurgePlan(before, below, letters)


async def _purge_subject(nc: NATS, subject: str, below_seq: int) -> int:
    request = json.dumps({"filter": subject, "seq": below_seq}).encode()
    reply = await nc.request(f"$JS.API.STREAM.PURGE.{t.DLQ}", request, timeout=10)
    body: dict[str, Any] = json.loads(reply.data)
    if not body.get("success"):
        raise DlqError(f"purge of {subject} failed: {body.get('error')}")
    return int(body.get("purged", 0))


async def purge_dead_letters(
    nc: NATS, signer: Signer, plan: PurgePlan, *, requested_by: str = ""
) -> PurgeOutcome:
    """Remove the planned dead letters (only `dlq.<agent>`; ops records stay) and record it."""
    by_agent: Counter[str] = Counter()
    for agent in sorted({str(x.letter.agent) for x in plan.letters}):
        by_agent[agent] = await _purge_subject(nc, s.dead_letters(agent), plan.below_seq)
    removed = sum(by_agent.values())
    entries = [
        PurgedLetter(
            dlq_seq=x.seq,
            agent=x.letter.agent,
            reason=x.letter.reason,
            intent_id=x.letter.intent_id,
            original_subject=x.letter.original_subject,
            original_stream=x.letter.stream,
            original_stream_seq=x.letter.stream_seq,
        )
        for x in plan.letters
    ]
    chunks = [
        entries[i : i + LETTERS_PER_RECORD] for i in range(0, len(entries), LETTERS_PER_RECORD)
    ] or [[]]
    publisher = Publisher(nc.jetstream(), signer)
    seqs: list[int] = []
    for part, chunk in enumerate(chunks, start=1):
        record = DeadLettersPurged(
            event_id=uuid.uuid4(),
            producer=Identity.OPS,
            before=plan.before,
            below_seq=plan.below_seq,
            purged=removed,
            part=part,
            parts=len(chunks),
            letters=tuple(chunk),
            requested_by=requested_by,
        )
        ack = await (await publisher.start(Emit(PURGED_SUBJECT, record)))
        seqs.append(ack.seq)
    return PurgeOutcome(removed, dict(by_agent), seqs)
