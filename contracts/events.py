"""Every event of the flow, from acceptance to the ledger, plus ticks, control and dead letters."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from contracts.base import Envelope, IntentEvent, Message
from contracts.intent import TradeIntent
from contracts.types import ACCOUNT_PATTERN, SYMBOL_PATTERN, Amount, Identity, Price, TradingState


class Recommendation(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REVIEW = "review"


class RiskReason(StrEnum):
    """Reason codes of the risk gate, in the order its checks run."""

    HALTED = "halted"
    REDUCE_ONLY = "reduce_only"
    SYMBOL_NOT_ALLOWED = "symbol_not_allowed"
    MAX_QUANTITY = "max_quantity"
    MAX_NOTIONAL = "max_notional"
    STALE_PRICE = "stale_price"
    PRICE_COLLAR = "price_collar"
    POSITION_LIMIT = "position_limit"
    CONCENTRATION = "concentration"
    LEVERAGE = "leverage"
    DAILY_LOSS = "daily_loss"
    RATE_LIMIT = "rate_limit"
    MARKET_CLOSED = "market_closed"
    ANALYST_VETO = "analyst_veto"


class OrderRejectReason(StrEnum):
    HALTED = "halted"
    NOT_MARKETABLE = "not_marketable"
    NO_PRICE = "no_price"
    BROKER_ERROR = "broker_error"


class Citation(Message):
    """A passage of the firm's documents that the analyst relied on."""

    source: str
    """Document file name, e.g. `risk-limits-policy.md`."""
    section: str
    """Section heading within the document."""
    score: float
    """Retrieval similarity (cosine), 0..1."""


class Analysis(Message):
    """The analyst's structured review of one intent."""

    recommendation: Recommendation
    """`approve`, `reject` or `review`."""
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    """How sure the reviewer is, 0..1."""
    rationale: Annotated[str, Field(max_length=4000)]
    """Why, in a few sentences."""
    citations: tuple[Citation, ...] = ()
    """Passages cited."""
    model: str
    """Which reviewer produced it, e.g. `offline-reviewer` or `openai:gpt-4o-mini`."""
    degraded: bool = False
    """True when the configured model failed and the offline reviewer stood in."""
    injection_flagged: bool = False
    """True when the intent's free text tried to instruct the reviewer."""
    degraded_reason: str | None = None
    """Why the offline reviewer stood in: `provider_timeout`, `provider_error`, `invalid_output`,
    `circuit_open` or `budget_exhausted`; None when not degraded (and in older analyses)."""
    provider: str | None = None
    """The configured provider (`offline`, `openai`, `azure`, `openai_compatible`); in a
    degraded analysis the one that failed, while `model` names the reviewer that stood in."""
    prompt_version: str | None = None
    """Version of the review prompt (revision and digest of its fixed text)."""
    index_fingerprint: str | None = None
    """Fingerprint (sha256) of the knowledge index the cited passages were retrieved from: the
    documents, the embedding model and the splitter."""


class IntentAccepted(IntentEvent):
    """The ingestor validated and enriched an intent. Subject `intent.accepted.<SYMBOL>`."""

    kind: ClassVar[str] = "intent.accepted"

    intent: TradeIntent
    """The normalized intent."""
    reference_price: Price | None
    """Latest known price of the symbol when accepted (None if no tick yet)."""
    reference_price_ts: AwareDatetime | None
    """Time of that tick."""
    submission_seq: int | None = None
    """The submission's sequence in SUBMISSIONS: the trail reads it from there."""


class IntentAnalyzed(IntentEvent):
    """The analyst reviewed an intent. Subject `intent.analyzed.<SYMBOL>`."""

    kind: ClassVar[str] = "intent.analyzed"

    intent: TradeIntent
    """The normalized intent."""
    reference_price: Price | None
    """Reference price carried from acceptance."""
    reference_price_ts: AwareDatetime | None
    """Time of that price."""
    analysis: Analysis
    """The review."""


class RiskApproved(IntentEvent):
    """The risk gate approved an intent. Subject `risk.approved.<SYMBOL>`."""

    kind: ClassVar[str] = "risk.approved"

    intent: TradeIntent
    """The approved intent."""
    reference_price: Price
    """Price used for the limit checks."""
    notional_usd: Amount
    """Quantity times reference (or limit) price."""


class RiskRejected(IntentEvent):
    """The risk gate refused an intent. Subject `risk.rejected.<SYMBOL>`."""

    kind: ClassVar[str] = "risk.rejected"

    intent: TradeIntent
    """The refused intent."""
    reasons: tuple[RiskReason, ...]
    """Every failing check, in check order."""
    detail: str = ""
    """Human-readable explanation of the first reasons."""


class OrderFilled(IntentEvent):
    """The broker filled the order. Subject `order.filled.<SYMBOL>`."""

    kind: ClassVar[str] = "order.filled"

    intent: TradeIntent
    """The executed intent."""
    order_id: uuid.UUID
    """The broker order id (deterministic per intent)."""
    fill_price: Price
    """Average fill price."""
    fill_quantity: Amount
    """Filled quantity (positive)."""
    fee: Amount
    """Fee charged, in `currency`."""
    currency: str = "USD"
    """Settlement currency."""
    broker: str
    """Broker adapter name, e.g. `paper`."""


class OrderRejected(IntentEvent):
    """The executor did not execute. Subject `order.rejected.<SYMBOL>`."""

    kind: ClassVar[str] = "order.rejected"

    intent: TradeIntent
    """The intent not executed."""
    reason: OrderRejectReason
    """Why."""
    detail: str = ""
    """Free-text detail."""


class JournalLine(Message):
    """One line of a double-entry posting."""

    account: str
    """Ledger account, e.g. `paper-1:cash:USD` or `paper-1:position:AAPL`."""
    currency: str
    """Currency or instrument of the amount."""
    amount: Amount
    """Signed amount: debit positive, credit negative."""


class LedgerPosted(IntentEvent):
    """The ledger booked a fill. Subject `ledger.posted.<ACCOUNT>`."""

    kind: ClassVar[str] = "ledger.posted"

    account: Annotated[str, Field(pattern=ACCOUNT_PATTERN)]
    """Trading account."""
    journal_seq: int
    """Position of the posting in the journal's hash chain."""
    lines: tuple[JournalLine, ...]
    """The balanced lines."""
    entry_hash: str
    """SHA-256 of this posting chained to the previous one."""
    prev_hash: str
    """Hash of the previous posting."""


class MarketTick(Envelope):
    """A price observation. Subject `market.tick.<SYMBOL>`."""

    kind: ClassVar[str] = "market.tick"

    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN)]
    """Instrument."""
    price: Price
    """Last traded price."""
    volume: Amount | None = None
    """Traded volume, if known."""
    observed_at: AwareDatetime
    """When the price was observed at the venue."""


class TradingStateChanged(Envelope):
    """Ops changed the trading state. Subject `control.kill|resume|reduce`."""

    kind: ClassVar[str] = "control"

    state: TradingState
    """The new state."""
    reason: Annotated[str, Field(max_length=1000)] = ""
    """Why, in the operator's words."""
    requested_by: Annotated[str, Field(max_length=200)] = ""
    """Who asked."""


class DeadLetter(Envelope):
    """A message an agent could not process. Subject `dlq.<agent>`."""

    kind: ClassVar[str] = "dead_letter"

    agent: Identity
    """The agent that gave up on the message."""
    reason: str
    """Reason code, e.g. `invalid_payload`, `max_deliveries`, `subject_mismatch`."""
    error: str
    """What was wrong, in words."""
    original_subject: str
    """Where the message was published."""
    original_headers: dict[str, str] = {}
    """Its headers."""
    original_data_b64: str = ""
    """Its exact bytes, base64; empty when the dead letter refers to them where they are stored
    (`stream` at `stream_seq`), as dead letters do since storage is bounded."""
    original_size: int | None = None
    """The original's length in bytes, when it is referred to."""
    original_sha256: str | None = None
    """The original's SHA-256 (hex), when it is referred to: what a reader checks it against."""
    stream: str
    """The stream it was read from."""
    stream_seq: int
    """Its sequence in that stream."""
    delivery_count: int
    """How many times it had been delivered."""
    intent_id: uuid.UUID | None = None
    """The intent, when it could be read."""
    retry_of: uuid.UUID | None = None
    """Set on a re-published message's dead letter when it came from `dlq retry`."""


INTENT_EVENTS: tuple[type[IntentEvent], ...] = (
    IntentAccepted,
    IntentAnalyzed,
    RiskApproved,
    RiskRejected,
    OrderFilled,
    OrderRejected,
    LedgerPosted,
)
