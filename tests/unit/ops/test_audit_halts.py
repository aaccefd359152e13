"""The audit names a fill stored once a halt was observable, by the one trading-state rule."""

from __future__ import annotations

import uuid

from contracts import Identity, TradingState, TradingStateChanged
from contracts import subjects as s
from ops.audit.facts import Fact, fact_of
from ops.audit.halts import judge_halts
from ops.audit.report import AuditReport
from tests.support.audit import Chain, Streams

AT = "2025-06-02T10:00:{:06.3f}Z"


def at(seconds: float, fact: Fact) -> Fact:
    fact.stored_at = AT.format(seconds)
    return fact


def control(streams: Streams, subject: str, state: TradingState, signed: bool) -> Fact:
    change = TradingStateChanged(event_id=uuid.uuid4(), producer=Identity.OPS, state=state,
                                 reason="drill")  # fmt: skip
    headers = {"Tradeops-Signer": "ops", "Tradeops-Signature": "x"} if signed else {}
    fact = fact_of(streams.store(subject, change.model_dump_json().encode(), headers))
    fact.trusted = signed or subject == s.CONTROL_KILL  # as judge_provenance leaves them
    return fact


def fill_at(streams: Streams, seconds: float) -> Fact:
    chain = Chain(streams)
    fact, _ = chain.filled(uuid.uuid4())
    return at(seconds, fact)


def named(facts: list[Fact]) -> list[str | None]:
    report = AuditReport("test")
    judge_halts(facts, report)
    return [f.intent_id for f in report.discrepancies]


def test_a_fill_after_the_grace_of_a_halt_is_named_one_before_it_or_after_a_resume_is_not() -> None:
    streams = Streams()
    kill = at(1, control(streams, s.CONTROL_KILL, TradingState.HALTED, signed=False))
    resume = at(10, control(streams, s.CONTROL_RESUME, TradingState.ACTIVE, signed=True))
    in_flight, late, after_resume = fill_at(streams, 1.4), fill_at(streams, 3), fill_at(streams, 12)
    before = fill_at(streams, 0.5)

    assert named([kill, resume, before, in_flight, late, after_resume]) == [late.intent_id]


def test_an_unsigned_resume_does_not_end_the_halt_for_the_audit_either() -> None:
    streams = Streams()
    kill = at(1, control(streams, s.CONTROL_KILL, TradingState.HALTED, signed=True))
    resume = at(2, control(streams, s.CONTROL_RESUME, TradingState.ACTIVE, signed=False))
    late = fill_at(streams, 5)

    assert named([kill, resume, late]) == [late.intent_id]
