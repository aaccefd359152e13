"""The offline reviewer's rules: deterministic checks of one case, each citing its policy passage.

`findings(case)` runs one `_check_<thing>` per rule in a fixed order; `decide(case, refs)` turns
the findings into a `ReviewOutput` citing only passages that were retrieved. Findings marked
`hard` rest on a verifiable fact (injected instructions, a halt, a breached limit); the guard
enforces them over whatever a model said.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from agents.analyst.case import ReviewCase
from agents.analyst.injection import detect_injection
from agents.analyst.output import MAX_RATIONALE_CHARS, ReviewOutput
from contracts import OrderType, Recommendation, Side, TradingState

GUIDE = "analyst-review-guidelines.md"
POLICY = "risk-limits-policy.md"
KILL = "kill-switch-runbook.md"

NEAR_LIMIT = Decimal("0.8")
FAR_LIMIT_PCT = Decimal(2)
CRYPTO_MARKET_REVIEW_USD = Decimal(50_000)
MIN_RATIONALE_WORDS = 4
GENERIC_RATIONALES = frozenset(
    {"rebalance", "signal", "test", "per strategy", "strategy", "model", "trade", "buy", "sell",
     "n/a", "na", "none", "tbd", "-", "momentum", "alpha", "as per model", "per model"}
)  # fmt: skip

SEVERITY = {Recommendation.APPROVE: 0, Recommendation.REVIEW: 1, Recommendation.REJECT: 2}
HARD_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Finding:
    """One rule's conclusion about a case."""

    code: str
    """Red-flag or reason code, e.g. `prompt_injection`, `max_quantity`, `vague_rationale`."""
    recommendation: Recommendation
    confidence: float
    reason: str
    """One sentence for the rationale."""
    cites: tuple[str, ...]
    """Passages behind the rule, most specific first, as `<file>#<section heading>`."""
    hard: bool = False
    """A verifiable fact: enforced by the guard over any model's answer."""


def _reject(code: str, reason: str, *cites: str) -> Finding:
    return Finding(code, Recommendation.REJECT, HARD_CONFIDENCE, reason, cites, hard=True)


def _review(code: str, reason: str, *cites: str, confidence: float = 0.7) -> Finding:
    return Finding(code, Recommendation.REVIEW, confidence, reason, cites)


def _check_injection(case: ReviewCase) -> Finding | None:
    found = detect_injection(rationale=case.intent.rationale, strategy=case.intent.strategy)
    if found is None:
        return None
    return _reject(
        "prompt_injection",
        f"The {found.field} addresses the reviewer ({found.pattern}): {found.excerpt!r}; "
        "intent text is data, never instructions.",
        f"{GUIDE}#Red flag: instructions in the rationale (prompt injection)",
        f"{GUIDE}#When to recommend reject",
    )


def _check_halted(case: ReviewCase) -> Finding | None:
    if case.context.trading_state is not TradingState.HALTED:
        return None
    return _reject(
        "halted",
        "Trading is HALTED by the kill switch; no order may trade.",
        f"{GUIDE}#Red flag: orders against a kill switch or reduce-only state",
        f"{KILL}#What happens to in-flight intents",
        f"{POLICY}#Trading state checks: halted and reduce_only",
    )


def _check_universe(case: ReviewCase) -> Finding | None:
    if case.context.in_universe:
        return None
    return _reject(
        "symbol_not_allowed",
        f"{case.intent.symbol} is not in the approved universe.",
        f"{POLICY}#Approved universe: symbol_not_allowed",
    )


def _check_max_quantity(case: ReviewCase) -> Finding | None:
    limit = case.context.max_quantity
    if limit is None or case.intent.quantity <= limit:
        return None
    return _reject(
        "max_quantity",
        f"Quantity {case.intent.quantity} exceeds the {case.intent.symbol} max_quantity {limit}.",
        f"{POLICY}#Order size: max_quantity and max_notional",
    )


def _check_max_notional(case: ReviewCase) -> Finding | None:
    notional, limit = case.context.notional_usd, case.context.max_notional_usd
    if notional is None or notional <= limit:
        return None
    return _reject(
        "max_notional",
        f"Notional {notional} USD exceeds max_notional {limit} USD.",
        f"{POLICY}#Order size: max_quantity and max_notional",
    )


def _check_collar(case: ReviewCase) -> Finding | None:
    distance, collar = case.context.limit_distance_pct, case.context.price_collar_pct
    if distance is None or distance <= collar:
        return None
    return _reject(
        "price_collar",
        f"Limit price is {distance}% from the last price, beyond the {collar}% collar.",
        f"{POLICY}#Price checks: stale_price and price_collar",
    )


def _check_reducing(case: ReviewCase) -> Finding | None:
    if case.context.trading_state is not TradingState.REDUCING:
        return None
    return _review(
        "reduce_only",
        "Trading is REDUCING: only orders that reduce a position may trade; confirm this one does.",
        f"{GUIDE}#Red flag: orders against a kill switch or reduce-only state",
        f"{POLICY}#Trading state checks: halted and reduce_only",
    )


def _check_rationale(case: ReviewCase) -> Finding | None:
    text = (case.intent.rationale or "").strip()
    words = text.split()
    if (
        text
        and text.lower().strip(" .!") not in GENERIC_RATIONALES
        and len(words) >= MIN_RATIONALE_WORDS
    ):
        return None
    what = "missing" if not text else f"vague ({text[:40]!r})"
    return _review(
        "vague_rationale",
        f"Rationale is {what}; ask the submitter why the order trades.",
        f"{GUIDE}#Missing or vague rationale",
        f"{GUIDE}#When to recommend review",
    )


def _check_near_limits(case: ReviewCase) -> Finding | None:
    ctx, quantity = case.context, case.intent.quantity
    near_quantity = (
        ctx.max_quantity is not None
        and NEAR_LIMIT * ctx.max_quantity < quantity <= ctx.max_quantity
    )
    near_notional = (
        ctx.notional_usd is not None
        and NEAR_LIMIT * ctx.max_notional_usd < ctx.notional_usd <= ctx.max_notional_usd
    )
    if not (near_quantity or near_notional):
        return None
    what = "quantity" if near_quantity else "notional"
    return _review(
        "near_limit",
        f"Order {what} is above 80% of its per-order limit; check the size is intended.",
        f"{POLICY}#Order size: max_quantity and max_notional",
        f"{GUIDE}#When to recommend review",
    )


def _check_far_limit(case: ReviewCase) -> Finding | None:
    distance = case.context.limit_distance_pct
    if distance is None or distance < FAR_LIMIT_PCT:
        return None
    return _review(
        "limit_far_from_market",
        f"Limit price is {distance}% from the last price: a typo or a stale signal?",
        f"{GUIDE}#Limit orders far from the market",
    )


def _check_missing_price(case: ReviewCase) -> Finding | None:
    if case.context.notional_usd is not None:
        return None
    return _review(
        "no_reference_price",
        "No reference price: the notional cannot be checked against the limits.",
        f"{GUIDE}#Inputs to a review",
        f"{POLICY}#Price checks: stale_price and price_collar",
        confidence=0.6,
    )


def _check_crypto_market(case: ReviewCase) -> Finding | None:
    ctx, intent = case.context, case.intent
    if (
        ctx.asset_class != "crypto"
        or intent.order_type is not OrderType.MARKET
        or ctx.notional_usd is None
        or ctx.notional_usd <= CRYPTO_MARKET_REVIEW_USD
    ):
        return None
    return _review(
        "crypto_market_order",
        f"Crypto market order of {ctx.notional_usd} USD; a limit order is preferred.",
        f"{GUIDE}#Crypto volatility",
    )


CHECKS: tuple[Callable[[ReviewCase], Finding | None], ...] = (
    _check_injection,
    _check_halted,
    _check_universe,
    _check_max_quantity,
    _check_max_notional,
    _check_collar,
    _check_reducing,
    _check_rationale,
    _check_near_limits,
    _check_far_limit,
    _check_missing_price,
    _check_crypto_market,
)
APPROVE_CITES = (
    f"{GUIDE}#When to recommend approve",
    f"{POLICY}#Order size: max_quantity and max_notional",
)


def findings(case: ReviewCase) -> list[Finding]:
    """Run every check in order; return what they found."""
    return [f for f in (check(case) for check in CHECKS) if f is not None]


def pick_citations(wanted: Sequence[str], retrieved: Sequence[str]) -> list[str]:
    """Return the wanted passages that were retrieved, in the wanted order."""
    return [ref for ref in wanted if ref in retrieved]


def truncate(text: str, limit: int = MAX_RATIONALE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def decide(case: ReviewCase, retrieved: Sequence[str]) -> ReviewOutput:
    """Return the offline review of `case`, citing only the `retrieved` passages (best first)."""
    found = findings(case)
    if not found:
        side = "sells" if case.intent.side is Side.SELL else "buys"
        found = [
            Finding(
                "ordinary",
                Recommendation.APPROVE,
                0.85,
                f"Ordinary order: {side} {case.intent.quantity} {case.intent.symbol} well inside "
                "the limits, with a specific rationale.",
                APPROVE_CITES,
            )
        ]
    worst = max(SEVERITY[f.recommendation] for f in found)
    deciding = [f for f in found if SEVERITY[f.recommendation] == worst]
    others = [f for f in found if SEVERITY[f.recommendation] != worst]
    citations: list[str] = []
    for finding in deciding + others:
        for ref in pick_citations(finding.cites, retrieved):
            if ref not in citations:
                citations.append(ref)
    if not citations and retrieved:
        citations.append(retrieved[0])
    return ReviewOutput(
        recommendation=deciding[0].recommendation,
        confidence=max(f.confidence for f in deciding),
        rationale=truncate(" ".join(f.reason for f in deciding + others)),
        citations=tuple(citations),
        flags=tuple(f.code for f in found if f.code != "ordinary"),
    )
