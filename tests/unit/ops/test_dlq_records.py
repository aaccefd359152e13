"""The operator's dead-letter records: retry headers, and purged dead letters in the audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.deadletter import dead_letter
from bus.headers import DLQ_RETRY as RETRY_HEADER
from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.signing import Signer, Verifier
from contracts import DeadLetter, Identity
from contracts.records import DeadLettersPurged, PurgedLetter
from ops.audit.chains import evaluate
from ops.audit.facts import fact_of, purged_letters
from ops.dlq import PURGED_SUBJECT, is_dead_letter_subject, retry_headers
from tests.support.audit import Chain, Streams
from tests.support.deadletters import refers_to

OPS_KEY = Ed25519PrivateKey.generate()
OPS = Signer(Identity.OPS, OPS_KEY)


def letter_of(headers: dict[str, str], data: bytes) -> DeadLetter:
    event = dead_letter(
        agent=Identity.LEDGER, reason="booking_refused", error="no", subject="order.filled.AAPL",
        headers=headers, data=data, stream="ORDERS", stream_seq=7, delivery_count=1,
    ).event  # fmt: skip
    assert isinstance(event, DeadLetter)
    return event


def test_original_bytes_keep_their_signature_and_get_a_fresh_msg_id() -> None:
    original = {SIGNER_HEADER: "executor", SIGNATURE_HEADER: "c2ln", "Nats-Msg-Id": "old"}
    headers = retry_headers(letter_of(original, b"{}"), 12, b"{}", False, OPS)
    assert headers[SIGNER_HEADER] == "executor" and headers[SIGNATURE_HEADER] == "c2ln"
    assert headers[RETRY_HEADER] == "12"
    assert headers["Nats-Msg-Id"] not in ("old", "")
    second = retry_headers(letter_of(original, b"{}"), 12, b"{}", False, OPS)
    assert second["Nats-Msg-Id"] != headers["Nats-Msg-Id"]


def test_repaired_bytes_are_signed_by_ops() -> None:
    original = {SIGNER_HEADER: "executor", SIGNATURE_HEADER: "c2ln"}
    repaired = b'{"intent_id": "%s"}' % str(uuid.uuid4()).encode()
    headers = retry_headers(letter_of(original, b"{}"), 3, repaired, True, OPS)
    assert headers[SIGNER_HEADER] == "ops"
    verifier = Verifier({"ops": OPS_KEY.public_key()})
    assert verifier.check("order.filled.AAPL", repaired, headers)[0] == "valid"
    assert headers["Tradeops-Intent-Id"] == repaired.decode().split('"')[3]


def test_only_agents_dead_letter_subjects_are_dead_letters() -> None:
    assert is_dead_letter_subject("dlq.ingestor")
    assert not is_dead_letter_subject("dlq.retried")
    assert not is_dead_letter_subject(PURGED_SUBJECT)


def test_a_purged_dead_letter_still_ends_its_intent_in_the_audit() -> None:
    streams = Streams()
    chain = Chain(streams)
    submitted = chain.submitted()
    record = DeadLettersPurged(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        before=datetime.now(UTC),
        below_seq=5,
        purged=1,
        letters=(
            PurgedLetter(
                dlq_seq=4, agent=Identity.INGESTOR, reason="invalid_payload",
                intent_id=chain.intent_id, original_subject=submitted.subject,
                original_stream="SUBMISSIONS", original_stream_seq=submitted.seq,
            ),
        ),
    )  # fmt: skip
    fact = fact_of(streams.store(PURGED_SUBJECT, record.model_dump_json().encode()))
    letters = purged_letters(fact)
    assert [x.intent_id for x in letters] == [str(chain.intent_id)]
    verdict = evaluate(
        str(chain.intent_id), [submitted, *letters], retried={}, intent_of={}, full=True
    )
    assert verdict.outcome == "dead_lettered" and verdict.problems == []


def test_dead_letter_of_an_unreadable_submission_meets_its_submission() -> None:
    streams = Streams()
    raw = streams.store("intent.submitted.AAPL", b"\xff not json")
    emit = dead_letter(
        agent=Identity.INGESTOR, reason="invalid_payload", error="bad", subject=raw.subject,
        headers={}, data=raw.data, stream="SUBMISSIONS", stream_seq=raw.seq, delivery_count=1,
    )  # fmt: skip
    letter = fact_of(streams.store(emit.subject, emit.event.model_dump_json().encode()))
    assert letter.intent_id == fact_of(raw).intent_id
    assert refers_to(letter_of({}, raw.data), raw.data)
