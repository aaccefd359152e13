"""Builders of the pipeline's events, one per kind, derived as the agents derive them.

Every builder takes the intent (or the fill) the event is about and keyword changes; fields a test
does not name get a plausible value (`paper-1`, AAPL, 10 at 190 USD, an approving analysis). `ts`
and `causation_id` are left to the contract's defaults unless given. `emit` puts an event on the
subject its producer publishes it on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from agents.executor.agent import order_id_for
from agents.ledger.booking import book_fill
from agents.ledger.chain import GENESIS_HASH, entry_hash
from bus import Emit
from contracts import (
    Analysis,
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    JournalLine,
    LedgerPosted,
    OrderFilled,
    OrderRejected,
    OrderRejectReason,
    OrderType,
    Recommendation,
    RiskApproved,
    RiskReason,
    RiskRejected,
    Side,
    TradeIntent,
)
from contracts import subjects as s

PRICE = Decimal("190.00")
"""The reference and fill price builders use unless told otherwise."""

Number = str | Decimal


def trade_intent(
    *,
    symbol: str = "AAPL",
    side: Side | str = Side.BUY,
    quantity: Number = "10",
    account: str = "paper-1",
    limit_price: Number | None = None,
    intent_id: uuid.UUID | None = None,
    **fields: object,
) -> TradeIntent:
    """Return an intent (a limit order when `limit_price` is given, else a market order)."""
    if limit_price is not None:
        fields.update(order_type=OrderType.LIMIT, limit_price=Decimal(limit_price))
    return TradeIntent.model_validate(
        {
            "intent_id": intent_id or uuid.uuid4(),
            "account": account,
            "symbol": symbol,
            "side": Side(side),
            "quantity": Decimal(quantity),
            **fields,
        }
    )


def _meta(ts: datetime | None, causation_id: uuid.UUID | None) -> dict[str, object]:
    """The envelope fields a test set; the others keep the contract's defaults."""
    meta: dict[str, object] = {}
    if ts is not None:
        meta["ts"] = ts
    if causation_id is not None:
        meta["causation_id"] = causation_id
    return meta


def intent_accepted(
    intent: TradeIntent,
    *,
    reference_price: Number | None = None,
    reference_price_ts: datetime | None = None,
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> IntentAccepted:
    """The ingestor's event (no reference price unless given, as when no tick was seen)."""
    return IntentAccepted.derive(
        intent_id=intent.intent_id,
        producer=Identity.INGESTOR,
        intent=intent,
        reference_price=None if reference_price is None else Decimal(reference_price),
        reference_price_ts=reference_price_ts,
        **_meta(ts, causation_id),
    )


def analysis(
    recommendation: Recommendation = Recommendation.APPROVE,
    confidence: float = 0.9,
    rationale: str = "ok",
    model: str = "test",
) -> Analysis:
    """An analyst's review (by default a confident approval)."""
    return Analysis(
        recommendation=recommendation, confidence=confidence, rationale=rationale, model=model
    )


def intent_analyzed(
    intent: TradeIntent,
    *,
    review: Analysis | None = None,
    reference_price: Number | None = None,
    reference_price_ts: datetime | None = None,
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> IntentAnalyzed:
    """The analyst's event, carrying `review` (default `analysis()`)."""
    return IntentAnalyzed.derive(
        intent_id=intent.intent_id,
        producer=Identity.ANALYST,
        intent=intent,
        reference_price=None if reference_price is None else Decimal(reference_price),
        reference_price_ts=reference_price_ts,
        analysis=review or analysis(),
        **_meta(ts, causation_id),
    )


def risk_approved(
    intent: TradeIntent,
    *,
    reference_price: Number = PRICE,
    notional_usd: Number | None = None,
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> RiskApproved:
    """The risk gate's approval; the notional is quantity x price unless given."""
    price = Decimal(reference_price)
    return RiskApproved.derive(
        intent_id=intent.intent_id,
        producer=Identity.RISK,
        intent=intent,
        reference_price=price,
        notional_usd=intent.quantity * price if notional_usd is None else Decimal(notional_usd),
        **_meta(ts, causation_id),
    )


def risk_rejected(
    intent: TradeIntent,
    *,
    reasons: tuple[RiskReason, ...] = (RiskReason.MAX_NOTIONAL,),
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> RiskRejected:
    """The risk gate's rejection for `reasons`."""
    return RiskRejected.derive(
        intent_id=intent.intent_id,
        producer=Identity.RISK,
        intent=intent,
        reasons=reasons,
        **_meta(ts, causation_id),
    )


def order_filled(
    intent: TradeIntent,
    *,
    price: Number = PRICE,
    quantity: Number | None = None,
    fee: Number = "0",
    currency: str = "USD",
    order_id: uuid.UUID | None = None,
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> OrderFilled:
    """The executor's fill of the whole intent unless `quantity` says otherwise."""
    return OrderFilled.derive(
        intent_id=intent.intent_id,
        producer=Identity.EXECUTOR,
        intent=intent,
        order_id=order_id or order_id_for(intent.intent_id),
        fill_price=Decimal(price),
        fill_quantity=intent.quantity if quantity is None else Decimal(quantity),
        fee=Decimal(fee),
        currency=currency,
        broker="paper",
        **_meta(ts, causation_id),
    )


def make_fill(
    side: Side | str,
    quantity: Number,
    price: Number,
    fee: Number = "0",
    *,
    symbol: str = "AAPL",
    account: str = "paper-1",
    currency: str = "USD",
    intent_id: uuid.UUID | None = None,
) -> OrderFilled:
    """Return a fill of `quantity` `symbol` at `price` for `account`, as the executor posts it."""
    intent = trade_intent(
        symbol=symbol, side=side, quantity=quantity, account=account, intent_id=intent_id
    )
    return order_filled(intent, price=price, fee=fee, currency=currency)


def order_rejected(
    intent: TradeIntent,
    *,
    reason: OrderRejectReason = OrderRejectReason.HALTED,
    ts: datetime | None = None,
    causation_id: uuid.UUID | None = None,
) -> OrderRejected:
    """The executor's refusal for `reason`."""
    return OrderRejected.derive(
        intent_id=intent.intent_id,
        producer=Identity.EXECUTOR,
        intent=intent,
        reason=reason,
        **_meta(ts, causation_id),
    )


def ledger_posted(
    fill: OrderFilled,
    *,
    journal_seq: int = 1,
    prev_hash: str = GENESIS_HASH,
    lines: tuple[JournalLine, ...] | None = None,
    ts: datetime | None = None,
) -> LedgerPosted:
    """The ledger's posting of `fill` (lines as `book_fill` books it on an empty position),
    chained to `prev_hash` with the entry hash the ledger computes."""
    account = fill.intent.account
    booked = book_fill(None, fill).lines if lines is None else lines
    return LedgerPosted.derive(
        intent_id=fill.intent_id,
        producer=Identity.LEDGER,
        causation_id=fill.event_id,
        account=account,
        journal_seq=journal_seq,
        lines=booked,
        entry_hash=entry_hash(prev_hash, journal_seq, fill.intent_id, account, booked),
        prev_hash=prev_hash,
        **_meta(ts, None),
    )


TradeEvent = (
    IntentAccepted | IntentAnalyzed | RiskApproved | RiskRejected | OrderFilled | OrderRejected
)
"""The events that carry the intent (every intent event but the ledger's posting)."""


def subject_of(event: TradeEvent | LedgerPosted) -> str:
    """The subject the producer publishes `event` on: `<kind>.<SYMBOL or ACCOUNT>.<intent id>`."""
    token = event.account if isinstance(event, LedgerPosted) else event.intent.symbol
    return s.intent_event(event.kind, token, event.intent_id)


def emit(event: TradeEvent | LedgerPosted) -> Emit:
    """`event` on its subject, ready for a `Publisher`."""
    return Emit(subject_of(event), event)
