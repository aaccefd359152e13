"""Shared field types: identities, enums, decimal-on-the-wire, symbols and accounts."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

SYMBOL_PATTERN = r"^[A-Z][A-Z0-9]{0,9}(-[A-Z]{2,5})?$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"

# A decimal as a plain string: ASCII digits, an optional fraction, no exponent, no sign.
# Bounding the digit counts refuses exponent bombs and absurd magnitudes before Decimal() runs.
# `[0-9]`, not `\d`: `\d` also matches other scripts' digits, which Decimal() reads but the wire
# form (and the JSON Schema pattern) does not carry.
_UNSIGNED_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,10})?")
_SIGNED_RE = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")
_MAX_WIRE_DIGITS = 18
"""The widest digit count either pattern admits, on each side of the point."""

MAX_QUANTITY = Decimal("1000000000")
MAX_PRICE = Decimal("1000000000")


class Identity(StrEnum):
    """Who is speaking: one client certificate and one signing key each."""

    OPS = "ops"
    CLIENT = "client"
    INGESTOR = "ingestor"
    ANALYST = "analyst"
    RISK = "risk"
    EXECUTOR = "executor"
    LEDGER = "ledger"


AGENTS: tuple[Identity, ...] = (
    Identity.INGESTOR,
    Identity.ANALYST,
    Identity.RISK,
    Identity.EXECUTOR,
    Identity.LEDGER,
)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TradingState(StrEnum):
    """The desk-wide trading state, flipped by ops on `control.*`."""

    ACTIVE = "active"
    HALTED = "halted"
    REDUCING = "reducing"


def _decimal_from(value: object, pattern: re.Pattern[str], shape: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        # Built in Python: hold it to the wire's bounds, so its JSON parses back. The magnitude
        # check runs first, as formatting 1E+999999999 would spell out a billion digits.
        exponent = value.as_tuple().exponent
        if (
            value.adjusted() >= _MAX_WIRE_DIGITS
            or (isinstance(exponent, int) and exponent < -_MAX_WIRE_DIGITS)
            or not pattern.fullmatch(_to_wire(value))
        ):
            raise ValueError(f"expected a decimal such as {shape} (bounded digits), got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string such as {shape}, got {type(value).__name__}")
    if not pattern.fullmatch(value):
        raise ValueError(
            f"expected a plain decimal string such as {shape} "
            "(no exponent, NaN, Infinity or surrounding spaces; bounded digits)"
        )
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid decimals
        raise ValueError(f"not a decimal: {value!r}") from exc


def _positive_bounded(limit: Decimal) -> AfterValidator:
    def check(value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be greater than zero")
        if value > limit:
            raise ValueError(f"must be at most {limit}")
        return value

    return AfterValidator(check)


def _to_wire(value: Decimal) -> str:
    return format(value, "f")


_WIRE = PlainSerializer(_to_wire, return_type=str, when_used="always")

Quantity = Annotated[
    Decimal,
    BeforeValidator(lambda v: _decimal_from(v, _UNSIGNED_RE, '"100" or "0.5"')),
    _positive_bounded(MAX_QUANTITY),
    _WIRE,
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,10})?$"}),
]
"""A strictly positive quantity, a decimal string on the wire."""

Price = Annotated[
    Decimal,
    BeforeValidator(lambda v: _decimal_from(v, _UNSIGNED_RE, '"187.25"')),
    _positive_bounded(MAX_PRICE),
    _WIRE,
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,12}(\.[0-9]{1,10})?$"}),
]
"""A strictly positive price, a decimal string on the wire."""

Amount = Annotated[
    Decimal,
    BeforeValidator(lambda v: _decimal_from(v, _SIGNED_RE, '"-1250.50"')),
    _WIRE,
    WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$"}),
]
"""A signed amount of money or quantity (cash deltas, P&L), a decimal string on the wire."""
