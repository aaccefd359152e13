"""Build stored messages of one intent's chain, as the agents write them, for the audit's tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import count

from agents.ledger.booking import book_fill
from agents.ledger.chain import GENESIS_HASH, entry_hash
from bus.deadletter import dead_letter
from bus.replay import StoredMsg
from contracts import (
    Analysis,
    Envelope,
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    LedgerPosted,
    OrderFilled,
    Recommendation,
    RiskApproved,
    RiskReason,
    RiskRejected,
    TradeIntent,
)
from contracts import subjects as s
from contracts import topology as t
from ops.audit.facts import Fact, fact_of

STREAM_OF = {
    "intent": t.INTENTS,
    "risk": t.RISK,
    "order": t.ORDERS,
    "ledger": t.LEDGER,
    "dlq": t.DLQ,
    "control": t.CONTROL,
}


def stream_of(subject: str) -> str:
    """Return the stream that stores `subject`: client submissions have a stream of their own."""
    if subject.startswith(f"{s.INTENT_SUBMITTED}."):
        return t.SUBMISSIONS
    return STREAM_OF[subject.split(".", 1)[0]]


@dataclass
class Streams:
    """Assigns stream sequences and builds `StoredMsg`s."""

    seqs: dict[str, count[int]] = field(default_factory=dict)

    def store(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> StoredMsg:
        stream = stream_of(subject)
        seq = next(self.seqs.setdefault(stream, count(1)))
        return StoredMsg(stream, seq, subject, headers or {}, data, "2025-06-02T10:00:00.000000Z")

    def event(self, subject: str, event: Envelope, signer: str | None = None) -> Fact:
        headers = {"Tradeops-Signer": signer or str(event.producer), "Tradeops-Signature": "x"}
        fact = fact_of(self.store(subject, event.model_dump_json().encode(), headers))
        fact.trusted = True
        return fact


def submission(intent_id: uuid.UUID, symbol: str = "AAPL", quantity: str = "10") -> bytes:
    return json.dumps({"intent_id": str(intent_id), "account": "paper-1", "symbol": symbol,
                       "side": "buy", "quantity": quantity}).encode()  # fmt: skip


@dataclass
class Chain:
    """One intent's events, built step by step."""

    streams: Streams
    intent_id: uuid.UUID = field(default_factory=uuid.uuid4)
    symbol: str = "AAPL"
    quantity: str = "10"

    @property
    def intent(self) -> TradeIntent:
        return TradeIntent.model_validate_json(
            submission(self.intent_id, self.symbol, self.quantity)
        )

    def submitted(self) -> Fact:
        raw = self.streams.store(
            s.of(s.INTENT_SUBMITTED, self.symbol),
            submission(self.intent_id, self.symbol, self.quantity),
        )
        fact = fact_of(raw)
        fact.trusted = True
        return fact

    def accepted(self, **changes: object) -> tuple[Fact, IntentAccepted]:
        intent = self.intent.model_copy(update=changes)
        event = IntentAccepted.derive(
            intent_id=self.intent_id, producer=Identity.INGESTOR, intent=intent,
            reference_price=Decimal("190"), reference_price_ts=None,
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.INTENT_ACCEPTED, intent.symbol, self.intent_id), event), event

    def analyzed(self, cause: IntentAccepted) -> tuple[Fact, IntentAnalyzed]:
        analysis = Analysis(recommendation=Recommendation.APPROVE, confidence=0.9,
                            rationale="fine", model="offline-reviewer")  # fmt: skip
        event = IntentAnalyzed.derive(
            intent_id=self.intent_id, producer=Identity.ANALYST, causation_id=cause.event_id,
            intent=self.intent, reference_price=None, reference_price_ts=None, analysis=analysis,
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.INTENT_ANALYZED, self.symbol, self.intent_id), event), event

    def approved(self, cause_id: uuid.UUID) -> tuple[Fact, RiskApproved]:
        event = RiskApproved.derive(
            intent_id=self.intent_id, producer=Identity.RISK, causation_id=cause_id,
            intent=self.intent, reference_price=Decimal("190"), notional_usd=Decimal("1900"),
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.RISK_APPROVED, self.symbol, self.intent_id), event), event

    def risk_rejected(self, cause: IntentAnalyzed) -> Fact:
        event = RiskRejected.derive(
            intent_id=self.intent_id, producer=Identity.RISK, causation_id=cause.event_id,
            intent=self.intent, reasons=(RiskReason.MAX_NOTIONAL,),
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.RISK_REJECTED, self.symbol, self.intent_id), event)

    def filled(self, cause_id: uuid.UUID, quantity: str | None = None) -> tuple[Fact, OrderFilled]:
        event = OrderFilled.derive(
            intent_id=self.intent_id, producer=Identity.EXECUTOR, causation_id=cause_id,
            intent=self.intent, order_id=uuid.uuid4(), fill_price=Decimal("190"),
            fill_quantity=Decimal(quantity or self.quantity), fee=Decimal("0.19"), broker="paper",
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.ORDER_FILLED, self.symbol, self.intent_id), event), event

    def posted(
        self, fill: OrderFilled, journal_seq: int = 1, prev: str = GENESIS_HASH
    ) -> tuple[Fact, LedgerPosted]:
        lines = book_fill(None, fill).lines
        event = LedgerPosted.derive(
            intent_id=self.intent_id, producer=Identity.LEDGER, causation_id=fill.event_id,
            account="paper-1", journal_seq=journal_seq, lines=lines,
            entry_hash=entry_hash(prev, journal_seq, self.intent_id, "paper-1", lines),
            prev_hash=prev,
        )  # fmt: skip
        return self.streams.event(s.intent_event(s.LEDGER_POSTED, "paper-1", self.intent_id), event), event

    def dead_letter(
        self, data: bytes, origin_seq: int, agent: Identity = Identity.INGESTOR
    ) -> Fact:
        emit = dead_letter(
            agent=agent, reason="invalid_payload", error="bad",
            subject=s.of(s.INTENT_SUBMITTED, self.symbol), headers={}, data=data,
            stream=t.SUBMISSIONS, stream_seq=origin_seq, delivery_count=1,
        )  # fmt: skip
        return self.streams.event(emit.subject, emit.event)

    def complete(self) -> list[Fact]:
        """submitted -> accepted -> analyzed -> approved -> filled -> posted."""
        sub = self.submitted()
        acc, accepted = self.accepted()
        ana, analyzed = self.analyzed(accepted)
        app, approved = self.approved(analyzed.event_id)
        fil, fill = self.filled(approved.event_id)
        pos, _ = self.posted(fill)
        return [sub, acc, ana, app, fil, pos]
