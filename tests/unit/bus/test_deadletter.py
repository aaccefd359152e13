"""bus.deadletter: a dead letter keeps what failed, names its intent when it can, and has one id."""

from __future__ import annotations

import json
import uuid

import pytest

from bus.deadletter import dead_letter, intent_id_hint
from contracts import DeadLetter, Identity
from contracts import topology as t
from contracts.base import submission_ref
from tests.support.deadletters import refers_to

IID = uuid.UUID("5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21")


def letter(data: bytes, stream: str = t.INTENTS, seq: int = 9) -> DeadLetter:
    emit = dead_letter(
        agent=Identity.RISK, reason="invalid_payload", error="bad", subject="intent.analyzed.X.y",
        headers={"H": "v"}, data=data, stream=stream, stream_seq=seq, delivery_count=1,
    )  # fmt: skip
    assert isinstance(emit.event, DeadLetter)
    return emit.event


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[1, 2]", b'{"intent_id": "nope"}', b'{"intent_id": 7}', b"{}",
     b"[" * 100_000],
    ids=["empty", "text", "list", "bad-uuid", "number", "no-id", "deep"],
)  # fmt: skip
def test_no_hint_from_a_payload_without_a_valid_intent_id(data: bytes) -> None:
    assert intent_id_hint(data) is None


def test_the_hint_is_the_payloads_intent_id() -> None:
    assert intent_id_hint(json.dumps({"intent_id": str(IID), "side": "hold"}).encode()) == IID


def test_a_dead_letter_keeps_the_original_bytes_and_headers_and_names_the_intent() -> None:
    data = json.dumps({"intent_id": str(IID)}).encode()
    emit = dead_letter(
        agent=Identity.RISK, reason="invalid_payload", error="bad", subject="s.x",
        headers={"H": "v"}, data=data, stream=t.INTENTS, stream_seq=9, delivery_count=2,
    )  # fmt: skip
    event = emit.event
    assert isinstance(event, DeadLetter)
    assert emit.subject == f"dlq.risk.{IID}"
    assert refers_to(event, data)
    assert (event.original_headers, event.intent_id, event.delivery_count) == ({"H": "v"}, IID, 2)


def test_the_id_is_fixed_by_stream_sequence_and_reason() -> None:
    assert letter(b"x").event_id == letter(b"other bytes").event_id
    assert letter(b"x").event_id != letter(b"x", seq=10).event_id
    assert letter(b"x").event_id != letter(b"x", stream=t.ORDERS).event_id


def submission_letter(data: bytes, seq: int = 5) -> tuple[str, DeadLetter]:
    emit = dead_letter(
        agent=Identity.INGESTOR, reason="invalid_payload", error="bad",
        subject="intent.submitted.X", headers=None, data=data,
        stream=t.SUBMISSIONS, stream_seq=seq, delivery_count=1,
    )  # fmt: skip
    assert isinstance(emit.event, DeadLetter)
    return emit.subject, emit.event


def test_an_unnamed_submission_is_dead_lettered_under_its_public_name() -> None:
    subject, event = submission_letter(b"garbage", seq=5)
    assert subject == "dlq.ingestor.00000000-0000-8000-8000-000000000005"
    assert subject == f"dlq.ingestor.{submission_ref(5)}"
    assert event.intent_id is None  # it never became an intent


def test_a_submission_naming_another_submissions_public_name_is_filed_under_its_own() -> None:
    claimed = json.dumps({"intent_id": str(submission_ref(6)), "symbol": "X"}).encode()
    subject, event = submission_letter(claimed, seq=5)
    assert subject == f"dlq.ingestor.{submission_ref(5)}"
    assert event.intent_id is None


def test_an_unnamed_message_of_another_stream_is_dead_lettered_under_none() -> None:
    assert letter(b"garbage").intent_id is None


def test_an_oversized_payload_is_referred_to_not_copied_and_its_intent_still_read() -> None:
    data = json.dumps({"intent_id": str(IID), "pad": "x" * 1_000_000}).encode()
    event = letter(data)
    assert refers_to(event, data)
    assert (event.stream, event.stream_seq) == (t.INTENTS, 9)
    assert len(event.model_dump_json()) < 2000  # a dead letter's size does not grow with it
    assert event.intent_id == IID
