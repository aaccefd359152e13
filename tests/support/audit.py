"""Build stored messages of one intent's chain, as the agents write them, for the audit's tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from itertools import count

from agents.ledger.chain import GENESIS_HASH
from bus.deadletter import dead_letter
from bus.replay import StoredMsg
from contracts import (
    Envelope,
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    LedgerPosted,
    OrderFilled,
    RiskApproved,
    TradeIntent,
)
from contracts import subjects as s
from contracts import topology as t
from ops.audit.facts import Fact, fact_of
from tests.support import events
from tests.support.events import TradeEvent

PRICE = "190"
"""The reference and fill price of every chain."""

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

    def _on_subject(self, event: TradeEvent | LedgerPosted) -> Fact:
        return self.streams.event(events.subject_of(event), event)

    def accepted(self, **changes: object) -> tuple[Fact, IntentAccepted]:
        event = events.intent_accepted(
            self.intent.model_copy(update=changes), reference_price=PRICE
        )
        return self._on_subject(event), event

    def analyzed(self, cause: IntentAccepted) -> tuple[Fact, IntentAnalyzed]:
        review = events.analysis(rationale="fine", model="offline-reviewer")
        event = events.intent_analyzed(self.intent, review=review, causation_id=cause.event_id)
        return self._on_subject(event), event

    def approved(self, cause_id: uuid.UUID) -> tuple[Fact, RiskApproved]:
        event = events.risk_approved(
            self.intent, reference_price=PRICE, notional_usd="1900", causation_id=cause_id
        )
        return self._on_subject(event), event

    def risk_rejected(self, cause: IntentAnalyzed) -> Fact:
        return self._on_subject(events.risk_rejected(self.intent, causation_id=cause.event_id))

    def filled(self, cause_id: uuid.UUID, quantity: str | None = None) -> tuple[Fact, OrderFilled]:
        event = events.order_filled(
            self.intent,
            price=PRICE,
            quantity=quantity or self.quantity,
            fee="0.19",
            order_id=uuid.uuid4(),
            causation_id=cause_id,
        )
        return self._on_subject(event), event

    def posted(
        self, fill: OrderFilled, journal_seq: int = 1, prev: str = GENESIS_HASH
    ) -> tuple[Fact, LedgerPosted]:
        event = events.ledger_posted(fill, journal_seq=journal_seq, prev_hash=prev)
        return self._on_subject(event), event

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
