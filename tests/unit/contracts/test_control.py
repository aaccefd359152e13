"""The one trading-state rule: stream order, the subject decides, resumes are deliberate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts import Identity, TradingState, TradingStateChanged
from contracts import subjects as s
from contracts.control import ControlMessage, decide, refusal


def body(state: TradingState, reason: str = "desk lead", skew_h: float = 0) -> bytes:
    return TradingStateChanged(
        event_id=uuid.uuid4(), producer=Identity.OPS, state=state, reason=reason,
        ts=datetime.now(UTC) + timedelta(hours=skew_h),
    ).model_dump_json().encode()  # fmt: skip


def msg(seq: int, subject: str, data: bytes, signed: bool = True) -> ControlMessage:
    return ControlMessage(seq, subject, data, signed)


def test_the_newest_by_sequence_decides_whatever_its_timestamp() -> None:
    early_stamped_kill = msg(7, s.CONTROL_KILL, body(TradingState.HALTED, skew_h=-1))
    late_stamped_resume = msg(6, s.CONTROL_RESUME, body(TradingState.ACTIVE, skew_h=+1))
    assert decide([late_stamped_resume, early_stamped_kill]) == (TradingState.HALTED, 7)
    assert decide([early_stamped_kill, msg(8, s.CONTROL_REDUCE, body(TradingState.REDUCING))]) == (
        TradingState.REDUCING,
        8,
    )


def test_a_kill_halts_unsigned_with_any_body_even_one_saying_active() -> None:
    for data in (b"", b"\x00junk", b'{"reason": "paged"}', body(TradingState.ACTIVE)):
        assert decide([msg(3, s.CONTROL_KILL, data, signed=False)]) == (TradingState.HALTED, 3)


def test_resume_or_reduce_needs_a_signature_a_well_formed_agreeing_body_and_a_reason() -> None:
    kill = msg(1, s.CONTROL_KILL, b"")
    refused = {
        "unsigned": msg(2, s.CONTROL_RESUME, body(TradingState.ACTIVE), signed=False),
        "no reason": msg(2, s.CONTROL_RESUME, body(TradingState.ACTIVE, reason="  ")),
        "body disagrees": msg(2, s.CONTROL_RESUME, body(TradingState.HALTED)),
        "not a request": msg(2, s.CONTROL_REDUCE, b'{"reason": "x"}'),
    }
    for name, resume in refused.items():
        assert refusal(resume) is not None, name
        assert decide([kill, resume]) == (TradingState.HALTED, 1), name
    good = msg(2, s.CONTROL_RESUME, body(TradingState.ACTIVE))
    assert refusal(good) is None
    assert decide([kill, good]) == (TradingState.ACTIVE, 2)


def test_nothing_that_takes_effect_means_no_decision() -> None:
    assert decide([]) is None
    assert decide([msg(1, s.CONTROL_RESUME, body(TradingState.ACTIVE), signed=False)]) is None
