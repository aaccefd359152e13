"""The gate's decision path without a bus: events out, market hours, redeliveries, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from agents.risk.agent import RiskGate
from agents.risk.calendar import MarketHours
from agents.risk.config import Limits
from agents.settings import Settings
from bus import Rejected
from contracts import RiskApproved, RiskReason, RiskRejected
from contracts import subjects as s
from tests.support.risk import analyzed, intent

SATURDAY = datetime(2024, 6, 8, 19, 0, tzinfo=UTC)


def gate(tmp_path: Path, now: datetime = SATURDAY) -> RiskGate:
    settings = Settings(data_dir=tmp_path, limits=Limits(concentration_pct=Decimal(100)))
    return RiskGate(settings, clock=lambda: now, market_hours=MarketHours(clock=lambda: now))


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_aapl_on_a_saturday_is_rejected_market_closed_on_risk_rejected(tmp_path: Path) -> None:
    # Arrange
    risk = gate(tmp_path)
    event = analyzed(intent("10"), price=Decimal("190"), price_ts=SATURDAY, ts=SATURDAY)
    before = counted("tradeops_risk_rejections_total", reason="market_closed")

    # Act
    [emit] = risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "AAPL", event.intent_id))

    # Assert
    assert emit.subject == s.intent_event(s.RISK_REJECTED, "AAPL", event.intent_id)
    assert isinstance(emit.event, RiskRejected)
    assert emit.event.reasons == (RiskReason.MARKET_CLOSED,)
    assert emit.event.detail == "market_closed: AAPL's market (XNYS) is closed"
    assert emit.event.causation_id == event.event_id
    assert counted("tradeops_risk_rejections_total", reason="market_closed") == before + 1


def test_btc_on_a_saturday_is_approved_at_the_gate_tick(tmp_path: Path) -> None:
    # Arrange: the gate's own tick, 2 s old
    risk = gate(tmp_path)
    risk.exposure.mark("BTC-USD", Decimal("65000"), SATURDAY - timedelta(seconds=2))
    event = analyzed(intent("0.5", symbol="BTC-USD"), price=None, price_ts=None, ts=SATURDAY)
    before = counted("tradeops_risk_decisions_total", decision="approved")

    # Act
    [emit] = risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "BTC-USD", event.intent_id))

    # Assert
    assert emit.subject == s.intent_event(s.RISK_APPROVED, "BTC-USD", event.intent_id)
    assert isinstance(emit.event, RiskApproved)
    assert (emit.event.reference_price, emit.event.notional_usd) == (Decimal(65000), Decimal(32500))
    assert risk.exposure.line("paper-1", "BTC-USD").pending_buy == Decimal("0.5")
    assert counted("tradeops_risk_decisions_total", decision="approved") == before + 1


def test_redelivered_intent_gets_the_same_decision_and_counts_once(tmp_path: Path) -> None:
    risk = gate(tmp_path)
    risk.exposure.mark("BTC-USD", Decimal("65000"), SATURDAY)
    event = analyzed(intent("2", symbol="BTC-USD"), price=None, price_ts=None, ts=SATURDAY)

    first = risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "BTC-USD", event.intent_id))
    second = risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "BTC-USD", event.intent_id))

    assert first == second
    assert risk.exposure.line("paper-1", "BTC-USD").pending_buy == Decimal(2)


def test_intent_on_another_symbols_subject_is_dead_lettered(tmp_path: Path) -> None:
    risk = gate(tmp_path)
    event = analyzed(intent("1"))
    with pytest.raises(Rejected, match="subject_mismatch"):
        risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "MSFT", event.intent_id))


def test_unknown_symbol_is_rejected_symbol_not_allowed_without_a_calendar(tmp_path: Path) -> None:
    risk = gate(tmp_path)
    event = analyzed(intent("1", symbol="TSLA"), price=Decimal(200), price_ts=SATURDAY)

    [emit] = risk.decide(event, s.intent_event(s.INTENT_ANALYZED, "TSLA", event.intent_id))

    assert isinstance(emit.event, RiskRejected)
    assert emit.event.reasons == (RiskReason.SYMBOL_NOT_ALLOWED,)
