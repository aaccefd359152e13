"""The gate's memory of decisions is bounded by `[risk]`, whatever the volume it decides."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agents.risk.agent import RiskGate
from agents.risk.calendar import MarketHours
from agents.risk.config import Limits, RiskMemory
from agents.settings import Settings
from contracts import subjects as s
from tests.support.risk import analyzed, intent

SATURDAY = datetime(2024, 6, 8, 19, 0, tzinfo=UTC)  # AAPL closed: every intent is rejected, fast


def test_decisions_past_the_caps_are_kept_by_id_then_forgotten_oldest_first(
    tmp_path: Path,
) -> None:
    memory = RiskMemory(remembered_decisions=1000, remembered_events=100)
    settings = Settings(data_dir=tmp_path, risk=memory, limits=Limits(rate_limit_per_s=10**6))
    gate = RiskGate(settings, clock=lambda: SATURDAY, market_hours=MarketHours(lambda: SATURDAY))
    decided = []
    for _ in range(1500):
        event = analyzed(intent("1"), ts=SATURDAY)
        subject = s.intent_event(s.INTENT_ANALYZED, "AAPL", event.intent_id)
        [emit] = gate.decide(event, subject)
        decided.append((event, subject, emit))

    kept = gate._decided
    assert len(kept) == 1000
    assert sum(emit is not None for emit in kept.values()) == 100
    newest, old_but_known, forgotten = decided[-1], decided[-500], decided[0]
    assert gate.decide(newest[0], newest[1]) == [newest[2]]  # re-published whole
    assert gate.decide(old_but_known[0], old_but_known[1]) == []  # known: not decided again
    assert forgotten[0].intent_id not in kept
