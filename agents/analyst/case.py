"""One review case: the intent plus the figures the reviewer needs, and its retrieval query.

The case is what the model sees (as JSON inside the user message) and what the offline reviewer
reads back, so both reason over exactly the same numbers.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts import IntentAccepted, OrderType, TradeIntent, TradingState

if TYPE_CHECKING:
    from agents.settings import Settings

CRYPTO_CALENDAR = "24/7"
HUNDRED = Decimal(100)


class ReviewContext(BaseModel):
    """What the desk knows about the intent when it is reviewed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trading_state: TradingState
    """The desk-wide trading state."""
    reference_price: Decimal | None
    """Latest known price of the symbol when the intent was accepted."""
    reference_price_ts: AwareDatetime | None
    """Time of that price."""
    in_universe: bool
    """Whether the symbol is in the approved universe."""
    asset_class: str | None
    """`equity` or `crypto` (None outside the universe)."""
    max_quantity: Decimal | None
    """Per-order quantity maximum of the symbol."""
    position_limit: Decimal | None
    """Absolute position limit of the symbol."""
    max_notional_usd: Decimal
    """Per-order notional maximum."""
    price_collar_pct: Decimal
    """Largest distance of a limit price from the last price, in percent."""
    notional_usd: Decimal | None
    """Quantity times the limit price (limit orders) or the reference price (market orders)."""
    limit_distance_pct: Decimal | None
    """Distance of the limit price from the reference price, in percent of the latter."""


class ReviewCase(BaseModel):
    """An intent and its context, as reviewed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intent: TradeIntent
    context: ReviewContext

    def to_prompt_json(self) -> str:
        """Return the case as one line of ASCII JSON (every other character escaped)."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=True, sort_keys=True)


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    return (part / whole * HUNDRED).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def case_for(
    accepted: IntentAccepted, trading_state: TradingState, settings: Settings
) -> ReviewCase:
    """Build the review case of one accepted intent from the settings' limits."""
    intent = accepted.intent
    instrument = settings.instrument(intent.symbol)
    reference = accepted.reference_price
    basis = intent.limit_price if intent.order_type is OrderType.LIMIT else reference
    distance = None
    if intent.limit_price is not None and reference is not None:
        distance = _pct(abs(intent.limit_price - reference), reference)
    asset_class = None
    if instrument is not None:
        asset_class = "crypto" if instrument.calendar == CRYPTO_CALENDAR else "equity"
    context = ReviewContext(
        trading_state=trading_state,
        reference_price=reference,
        reference_price_ts=accepted.reference_price_ts,
        in_universe=instrument is not None,
        asset_class=asset_class,
        max_quantity=instrument.max_quantity if instrument else None,
        position_limit=instrument.position_limit if instrument else None,
        max_notional_usd=settings.limits.max_notional_usd,
        price_collar_pct=settings.limits.price_collar_pct,
        notional_usd=(intent.quantity * basis).quantize(Decimal("0.01"))
        if basis is not None
        else None,
        limit_distance_pct=distance,
    )
    return ReviewCase(intent=intent, context=context)


def retrieval_queries(case: ReviewCase) -> list[str]:
    """Return the retrieval queries of a case, most important first.

    One query describes the order against the limits (side, symbol, order type, quantity and
    notional as whole-percent shares of their limits), one carries the rationale, and one the
    trading state when it is not active. The exact figures are in the prompt; the shares let
    similar orders share a query and its cached embedding, so a batch of ordinary orders mostly
    embeds only its rationales.
    """
    intent, ctx = case.intent, case.context
    order = [f"{intent.side} {intent.symbol} {intent.order_type} order"]
    if ctx.max_quantity is not None:
        order.append(f"quantity {_pct(intent.quantity, ctx.max_quantity):.0f}% of max_quantity")
    else:
        order.append(f"quantity {intent.quantity.normalize():f}, symbol not in approved universe")
    if ctx.notional_usd is None:
        order.append("notional unknown, no reference price")
    else:
        order.append(
            f"notional {_pct(ctx.notional_usd, ctx.max_notional_usd):.0f}% of max_notional"
        )
    if ctx.limit_distance_pct is not None:
        order.append(f"limit price {ctx.limit_distance_pct:.0f}% from last price, collar")
    if ctx.asset_class == "crypto":
        order.append("crypto volatility")
    queries = ["; ".join(order)]
    if intent.rationale and intent.rationale.strip():
        label = f"{intent.strategy}: " if intent.strategy else ""
        queries.append(f"{label}{intent.rationale.strip()}")
    else:
        queries.append("missing or vague rationale: no reason given for the order")
    if ctx.trading_state is TradingState.HALTED:
        queries.append("trading halted by the kill switch: orders during a halt")
    elif ctx.trading_state is TradingState.REDUCING:
        queries.append("trading state reducing: reduce-only orders")
    return queries
