"""What a client may do, and the request/reply it asks its intent's outcome with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import Identity
from contracts import permissions as p
from contracts.kinds import Outcome
from contracts.outcome import OutcomeAnswer, OutcomeQuery
from contracts.schema import MESSAGES


def test_client_may_publish_submissions_and_outcome_requests_and_read_only_its_inbox() -> None:
    client = p.grant_of(Identity.CLIENT)

    assert client.publish == ("intent.submitted.*", "intent.outcome")
    assert client.subscribe == ("_INBOX.client.>",)


def test_no_agent_may_answer_or_send_outcome_requests() -> None:
    for grant in p.grants():
        if grant.identity in (Identity.CLIENT, Identity.OPS):
            continue
        assert not any(x.startswith("intent.outcome") for x in grant.publish), grant.identity
        assert not any(x.startswith("intent.") for x in grant.subscribe), grant.identity


def test_a_query_names_one_id_and_nothing_else() -> None:
    assert OutcomeQuery.model_validate_json(b'{"intent_id": "x"}').intent_id == "x"
    for body in (b"{}", b'{"intent_id": ""}', b'{"intent_id": "x", "account": "y"}'):
        with pytest.raises(ValidationError):
            OutcomeQuery.model_validate_json(body)
    with pytest.raises(ValidationError):
        OutcomeQuery.model_validate_json(b'{"intent_id": "' + b"a" * 101 + b'"}')


def test_an_answer_round_trips_and_both_are_in_the_schema_export() -> None:
    answer = OutcomeAnswer(intent_id="i", outcome=Outcome.REJECTED, terminal=True, reasons=("x",))
    assert OutcomeAnswer.model_validate_json(answer.model_dump_json()) == answer
    assert MESSAGES["intent.outcome.query"] is OutcomeQuery
    assert MESSAGES["intent.outcome.answer"] is OutcomeAnswer
