"""The client-facing trade intent, and its normalized form carried through the pipeline."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from contracts.base import Message
from contracts.types import ACCOUNT_PATTERN, SYMBOL_PATTERN, OrderType, Price, Quantity, Side

MAX_RATIONALE_BYTES = 4096
MAX_INTENT_BYTES = 4 * MAX_RATIONALE_BYTES
"""Largest accepted `intent.submitted.*` payload; anything larger is refused unparsed.

Room for a full rationale under the worst JSON escaping (`\\uXXXX` pairs triple its bytes) plus
every other field, so no valid intent is refused for its size.
"""
MAX_SUBMISSION_BYTES = 4 * MAX_INTENT_BYTES
"""Largest message (headers included) the submissions' stream stores; nats-server refuses a larger
publish with "message size exceeds maximum allowed", so nothing of it is stored. Between
`MAX_INTENT_BYTES` and this, a submission is stored and dead-lettered with its exact bytes.
"""


# Unicode category Cc (C0, DEL, C1) except newline and tab.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _within_bytes(limit: int) -> AfterValidator:
    def check(text: str) -> str:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ValueError(f"must be at most {limit} bytes of UTF-8, got {size}")
        if _CONTROL.search(text):
            raise ValueError("must not contain control characters other than newline and tab")
        return text

    return AfterValidator(check)


FreeText = Annotated[str, _within_bytes(MAX_RATIONALE_BYTES)]
Label = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$")]


class _IntentFields(Message):
    account: Annotated[str, Field(pattern=ACCOUNT_PATTERN)]
    """The trading account, e.g. `paper-1`."""
    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN)]
    """Instrument symbol in upper case, e.g. `AAPL` or `BTC-USD`."""
    side: Side
    """`buy` or `sell`."""
    quantity: Quantity
    """Units to trade, a decimal string greater than zero."""
    order_type: OrderType = OrderType.MARKET
    """`market` or `limit`."""
    limit_price: Annotated[Price | None, Field(validate_default=True)] = None
    """Limit price, a decimal string; required for `limit`, forbidden for `market`."""
    strategy: Label | None = None
    """Optional name of the strategy that produced the intent."""
    rationale: FreeText | None = None
    """Optional free text (at most 4 KiB). Data for the analyst, never instructions."""

    @field_validator("limit_price", mode="after")
    @classmethod
    def _limit_price_matches_order_type(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        order_type = info.data.get("order_type")  # absent when order_type itself is invalid
        if order_type is OrderType.LIMIT and value is None:
            raise ValueError("limit_price is required when order_type is 'limit'")
        if order_type is OrderType.MARKET and value is not None:
            raise ValueError("limit_price is forbidden when order_type is 'market'")
        return value


class SubmitIntent(_IntentFields):
    """A command from a client: please trade. Published on `intent.submitted.<SYMBOL>`."""

    intent_id: uuid.UUID | None = None
    """Idempotency key chosen by the client; the same id twice is one intent."""


class TradeIntent(_IntentFields):
    """The intent as the pipeline carries it: always with its id."""

    intent_id: uuid.UUID
    """The intent's id (the client's, or assigned by the ingestor)."""

    @classmethod
    def from_submission(cls, submitted: SubmitIntent, assigned_id: uuid.UUID) -> TradeIntent:
        """Normalize a submission, keeping the client's id when it gave one."""
        fields = submitted.model_dump(exclude={"intent_id"})
        return cls(intent_id=submitted.intent_id or assigned_id, **fields)
