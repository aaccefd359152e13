"""contracts.subjects: an intent event's subject names its intent in the last token, and the
filters built here match exactly the subjects built here."""

from __future__ import annotations

import uuid

import pytest

from contracts import Identity
from contracts import subjects as s

IID = uuid.UUID("5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21")


def matches(filter_: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` the rest (at least one token)."""
    want, got = filter_.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


@pytest.mark.parametrize("prefix", s.INTENT_EVENT_PREFIXES)
def test_every_intent_event_subject_has_four_tokens_and_ends_with_the_intent(prefix: str) -> None:
    subject = s.intent_event(prefix, "AAPL", IID)
    assert subject == f"{prefix}.AAPL.{IID}"
    assert s.event_parts(subject) == (prefix, "AAPL", str(IID))
    assert s.last_token(subject) == str(IID)
    assert matches(s.of_intent(IID), subject)
    assert matches(s.intent_events(prefix), subject)


def test_of_intent_does_not_match_another_intents_events() -> None:
    other = s.intent_event(s.ORDER_FILLED, "AAPL", uuid.uuid4())
    assert not matches(s.of_intent(IID), other)


def test_event_parts_refuses_a_subject_that_is_not_an_intent_event() -> None:
    assert s.event_parts("intent.submitted.AAPL") is None
    assert s.event_parts(s.dead_letter(Identity.RISK, IID)) is None
    assert s.event_parts("a.b.c.d.e") is None


def test_names_intent_needs_the_token_and_the_intent() -> None:
    subject = s.intent_event(s.LEDGER_POSTED, "paper-1", IID)
    assert s.names_intent(subject, "paper-1", IID)
    assert not s.names_intent(subject, "paper-2", IID)
    assert not s.names_intent(subject, "paper-1", uuid.uuid4())
    assert not s.names_intent("intent.submitted.AAPL", "AAPL", IID)


def test_a_dead_letter_names_its_agent_and_intent_or_none() -> None:
    assert s.dead_letter(Identity.INGESTOR, IID) == f"dlq.ingestor.{IID}"
    assert s.dead_letter("risk", None) == "dlq.risk.none"
    assert matches(s.dead_letters(Identity.RISK), s.dead_letter(Identity.RISK, None))
    assert not matches(s.dead_letters(Identity.RISK), s.dead_letter(Identity.LEDGER, IID))
    assert matches(s.dead_letters_of(IID), s.dead_letter(Identity.LEDGER, IID))


def test_dlq_records_never_look_like_an_agents_dead_letter() -> None:
    retried = s.dlq_retried(IID)
    assert retried == f"dlq.retried.{IID}"
    assert s.dlq_retried(None) == "dlq.retried.none"
    # `dlq.<agent>.<id>` has three tokens too, so the agent token must never be `retried`
    assert "retried" not in {str(i) for i in Identity}
    assert not any(matches(s.dead_letters(i), s.DLQ_PURGED) for i in Identity)


def test_submissions_and_ticks_end_with_the_symbol() -> None:
    assert s.of(s.INTENT_SUBMITTED, "BTC-USD") == "intent.submitted.BTC-USD"
    assert s.last_token(s.of(s.MARKET_TICK, "AAPL")) == "AAPL"
    assert matches(s.every(s.INTENT_SUBMITTED), "intent.submitted.AAPL")
    assert not matches(s.every(s.INTENT_SUBMITTED), s.intent_event(s.INTENT_ACCEPTED, "AAPL", IID))


def test_the_advisory_and_inbox_subjects() -> None:
    assert (
        s.max_deliveries_advisory("INTENTS", "risk")
        == "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.INTENTS.risk"
    )
    assert s.inbox_prefix(Identity.ANALYST) == "_INBOX.analyst"
