"""Properties of `SubmitIntent` on the wire: valid intents round-trip exactly, and anything else
is refused with `InvalidMessage` naming the offending field, never with another exception."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import MAX_INTENT_BYTES, InvalidMessage, SubmitIntent, parse
from contracts.intent import MAX_RATIONALE_BYTES
from contracts.types import ACCOUNT_PATTERN, MAX_PRICE, MAX_QUANTITY, SYMBOL_PATTERN

FIELDS = tuple(SubmitIntent.model_fields)
REQUIRED = ("account", "symbol", "side", "quantity")
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$"
# Control characters other than newline and tab: C0, DEL and C1.
CONTROL_CHARS = [chr(c) for c in (*range(32), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"]

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies ---------------------------------------------------------------------------------


def decimal_strings(limit: Decimal) -> st.SearchStrategy[str]:
    """Canonical positive decimal strings up to `limit`, trailing zeros included (`"1.50"`)."""
    whole = st.one_of(st.integers(0, 999_999_999).map(str), st.just(str(int(limit))))
    fraction = st.none() | st.text("0123456789", min_size=1, max_size=10)
    built = st.builds(lambda w, f: w if f is None else f"{w}.{f}", whole, fraction)
    chosen = st.sampled_from(["1.50", "0.10", "100.000", "0.0000000001", "187.2500", "1"])
    return (chosen | built).filter(lambda text: 0 < Decimal(text) <= limit)


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


free_text_chars = st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t")
# Full-size rationales of the characters that grow most when a client escapes its JSON.
full_rationales = st.sampled_from(['"', "\\", "\n", "é", "€", "\U0001f600", "a"]).map(
    lambda ch: ch * (MAX_RATIONALE_BYTES // _utf8_size(ch))
)
rationales = st.one_of(
    st.text(free_text_chars, max_size=300),
    st.text(free_text_chars, max_size=1024).filter(lambda t: _utf8_size(t) <= MAX_RATIONALE_BYTES),
    full_rationales,
)


@st.composite
def valid_payloads(draw: st.DrawFn, order_type: str | None = None) -> dict[str, Any]:
    """A JSON-ready dict of a valid SubmitIntent; optional fields are omitted, null or set."""
    payload: dict[str, Any] = {
        "account": draw(st.from_regex(ACCOUNT_PATTERN, fullmatch=True)),
        "symbol": draw(st.from_regex(SYMBOL_PATTERN, fullmatch=True)),
        "side": draw(st.sampled_from(["buy", "sell"])),
        "quantity": draw(decimal_strings(MAX_QUANTITY)),
    }
    kind = order_type or draw(st.sampled_from(["market", "limit", "omitted"]))
    if kind == "limit":
        payload["order_type"] = "limit"
        payload["limit_price"] = draw(decimal_strings(MAX_PRICE))
    else:
        if kind == "market":
            payload["order_type"] = "market"
        if draw(st.booleans()):
            payload["limit_price"] = None
    optional = {
        "intent_id": st.none() | st.uuids().map(str),
        "strategy": st.none() | st.from_regex(LABEL_PATTERN, fullmatch=True),
        "rationale": st.none() | rationales,
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            payload[name] = draw(values)
    return payload


@st.composite
def encoded(draw: st.DrawFn, payloads: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """A payload as a client might encode it: ASCII-escaped or raw UTF-8, compact or indented."""
    payload = draw(payloads)
    text = json.dumps(
        payload, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2]))
    )
    return text.encode("utf-8")


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), children, max_size=8)
    ),
    max_leaves=25,
)


# --- helpers ------------------------------------------------------------------------------------


def rejection_fields(raw: bytes) -> list[str]:
    """Parse `raw`, expect InvalidMessage (any other exception fails), return its reason fields."""
    with pytest.raises(InvalidMessage) as caught:
        parse(SubmitIntent, raw, max_bytes=MAX_INTENT_BYTES)
    assert caught.value.reasons, "InvalidMessage must carry at least one reason"
    return [reason.field for reason in caught.value.reasons]


def assert_parses_and_round_trips_or_is_refused_with_reasons(raw: bytes) -> None:
    """Parse `raw`: InvalidMessage with reasons, or an intent that round-trips; nothing else."""
    try:
        intent = parse(SubmitIntent, raw, max_bytes=MAX_INTENT_BYTES)
    except InvalidMessage as exc:
        assert exc.reasons
        return
    wire = intent.model_dump_json().encode("utf-8")
    assert parse(SubmitIntent, wire, max_bytes=MAX_INTENT_BYTES) == intent


def with_raw_value(payload: dict[str, Any], field: str, token: str) -> bytes:
    """Encode `payload` with `field` set to the raw JSON `token` (e.g. `NaN`, `1.5`)."""
    marker = "__RAW_VALUE__"
    text = json.dumps({**payload, field: marker})
    return text.replace(json.dumps(marker), token).encode("utf-8")


# --- valid intents round-trip -------------------------------------------------------------------


@THOROUGH
@given(raw=encoded(valid_payloads()))
def test_valid_intent_round_trips_through_json_exactly(raw: bytes) -> None:
    # Arrange
    sent = json.loads(raw)

    # Act
    first = parse(SubmitIntent, raw, max_bytes=MAX_INTENT_BYTES)
    wire = first.model_dump_json()
    second = parse(SubmitIntent, wire.encode("utf-8"), max_bytes=MAX_INTENT_BYTES)

    # Assert
    assert second == first
    assert second.model_dump_json() == wire
    echoed = json.loads(wire)
    assert echoed["quantity"] == sent["quantity"]
    assert echoed["limit_price"] == sent.get("limit_price")
    for name in ("account", "symbol", "side", "strategy", "rationale", "intent_id"):
        assert echoed[name] == sent.get(name)
    assert echoed["order_type"] == sent.get("order_type", "market")


@pytest.mark.parametrize("quantity", ["1.50", "0.10", "100.000", "1000000000.0000000000"])
def test_quantity_with_trailing_zeros_keeps_them_on_the_wire(quantity: str) -> None:
    raw = json.dumps({"account": "paper-1", "symbol": "AAPL", "side": "buy", "quantity": quantity})

    intent = parse(SubmitIntent, raw.encode(), max_bytes=MAX_INTENT_BYTES)

    assert json.loads(intent.model_dump_json())["quantity"] == quantity


@pytest.mark.parametrize("char", ['"', "\\", "\n", "é", "\U0001f600"])
def test_largest_valid_intent_fits_the_payload_bound_even_when_escaped_and_indented(
    char: str,
) -> None:
    # Arrange: every field at its longest, the rationale in a character that grows when escaped.
    rationale = char * (MAX_RATIONALE_BYTES // _utf8_size(char))
    payload = {
        "intent_id": str(uuid.uuid4()),
        "account": "A" * 32,
        "symbol": "ABCDEFGHIJ-USD",
        "side": "sell",
        "quantity": "1000000000.0000000000",
        "order_type": "limit",
        "limit_price": "1000000000.0000000000",
        "strategy": "s" * 64,
        "rationale": rationale,
    }
    raw = json.dumps(payload, ensure_ascii=True, indent=4).encode()

    # Act
    intent = parse(SubmitIntent, raw, max_bytes=MAX_INTENT_BYTES)

    # Assert
    assert intent.rationale == rationale


@FAST
@given(value=st.decimals(allow_nan=False, allow_infinity=False))
def test_intent_built_in_python_either_fails_or_round_trips(value: Decimal) -> None:
    # Arrange / Act
    try:
        intent = SubmitIntent(account="paper-1", symbol="AAPL", side="buy", quantity=value)
    except ValidationError:
        return
    # Assert: whatever the constructor accepts, the wire accepts too.
    again = parse(SubmitIntent, intent.model_dump_json().encode(), max_bytes=MAX_INTENT_BYTES)
    assert again == intent


# --- anything else is refused with a reason -----------------------------------------------------


@THOROUGH
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_only_with_invalid_message(raw: bytes) -> None:
    assert_parses_and_round_trips_or_is_refused_with_reasons(raw)


@THOROUGH
@given(value=json_values)
def test_arbitrary_json_is_refused_only_with_invalid_message(value: object) -> None:
    raw = json.dumps(value).encode("utf-8")  # NaN and Infinity become the bare tokens

    assert_parses_and_round_trips_or_is_refused_with_reasons(raw)


@FAST
@given(
    payload=valid_payloads(),
    name=st.text(min_size=1, max_size=20).filter(lambda n: n not in FIELDS),
    value=json_scalars,
)
def test_intent_with_unknown_field_is_rejected_naming_it(
    payload: dict[str, Any], name: str, value: object
) -> None:
    raw = json.dumps({**payload, name: value}).encode("utf-8")

    assert name in rejection_fields(raw)


@FAST
@given(payload=valid_payloads(), name=st.sampled_from(REQUIRED))
def test_intent_missing_a_required_field_is_rejected_naming_it(
    payload: dict[str, Any], name: str
) -> None:
    del payload[name]

    assert name in rejection_fields(json.dumps(payload).encode())


# (raw JSON token, fields any of which may be named). A JSON number too long for the parser is
# refused before any field is read, so "payload" is an acceptable name for that one.
BAD_DECIMALS = [
    ("NaN", {"quantity"}),
    ("Infinity", {"quantity"}),
    ("-Infinity", {"quantity"}),
    ('"NaN"', {"quantity"}),
    ('"Infinity"', {"quantity"}),
    ('"1e999"', {"quantity"}),
    ("1e999", {"quantity"}),
    ('"1E3"', {"quantity"}),
    ('"-1"', {"quantity"}),
    ('"0"', {"quantity"}),
    ('"0.000"', {"quantity"}),
    ('"' + "9" * 40 + '"', {"quantity"}),
    ('"1.' + "0" * 11 + '1"', {"quantity"}),
    ("9" * 40, {"quantity", "payload"}),
    ("9" * 5000, {"quantity", "payload"}),
    ("1.5", {"quantity"}),
    ("1", {"quantity"}),
    ("true", {"quantity"}),
    ("null", {"quantity"}),
    ("[]", {"quantity"}),
    ('{"value": "1"}', {"quantity"}),
    ('"1000000000.0000000001"', {"quantity"}),
    ('" 1"', {"quantity"}),
    ('"1 "', {"quantity"}),
    ('"+1"', {"quantity"}),
    ('".5"', {"quantity"}),
    ('"1."', {"quantity"}),
    ('"1,5"', {"quantity"}),
    ('"1_000"', {"quantity"}),
    ('"0x10"', {"quantity"}),
    ('"\\u0663"', {"quantity"}),  # ARABIC-INDIC DIGIT THREE
    ('"\\uff11.5"', {"quantity"}),  # FULLWIDTH DIGIT ONE
    ('""', {"quantity"}),
]


@FAST
@given(payload=valid_payloads(), bad=st.sampled_from(BAD_DECIMALS))
def test_quantity_not_a_bounded_positive_decimal_string_is_rejected_naming_quantity(
    payload: dict[str, Any], bad: tuple[str, set[str]]
) -> None:
    token, names = bad

    fields = rejection_fields(with_raw_value(payload, "quantity", token))

    assert names & set(fields), fields


@FAST
@given(payload=valid_payloads(order_type="limit"), bad=st.sampled_from(BAD_DECIMALS))
def test_limit_price_not_a_bounded_positive_decimal_string_is_rejected_naming_limit_price(
    payload: dict[str, Any], bad: tuple[str, set[str]]
) -> None:
    token, names = bad
    names = {"limit_price" if n == "quantity" else n for n in names}

    fields = rejection_fields(with_raw_value(payload, "limit_price", token))

    assert names & set(fields), fields


@FAST
@given(
    payload=valid_payloads(),
    case=st.sampled_from(
        [
            ("side", "BUY"),
            ("side", "Sell"),
            ("side", " buy"),
            ("side", "hold"),
            ("order_type", "MARKET"),
            ("order_type", "Limit"),
            ("order_type", "stop"),
        ]
    ),
)
def test_enum_in_wrong_case_or_unknown_is_rejected_naming_the_field(
    payload: dict[str, Any], case: tuple[str, str]
) -> None:
    name, value = case

    assert name in rejection_fields(json.dumps({**payload, name: value}).encode())


@FAST
@given(
    payload=valid_payloads(),
    char=st.sampled_from([".", "*", ">", " ", "\n", "\x00", "a", "É"]),
    where=st.integers(min_value=0),
)
def test_symbol_with_subject_wildcard_dot_or_lowercase_is_rejected_naming_symbol(
    payload: dict[str, Any], char: str, where: int
) -> None:
    # Arrange: one character a subject token must never carry, anywhere in a valid symbol.
    symbol = payload["symbol"]
    at = where % (len(symbol) + 1)
    payload["symbol"] = symbol[:at] + char + symbol[at:]

    assert "symbol" in rejection_fields(json.dumps(payload).encode())


@FAST
@given(payload=valid_payloads())
def test_lowercase_symbol_is_rejected_naming_symbol(payload: dict[str, Any]) -> None:
    payload["symbol"] = payload["symbol"].lower()

    assert "symbol" in rejection_fields(json.dumps(payload).encode())


@FAST
@given(payload=valid_payloads(order_type="market"), price=decimal_strings(MAX_PRICE))
def test_limit_price_on_market_order_is_rejected_naming_limit_price(
    payload: dict[str, Any], price: str
) -> None:
    payload["limit_price"] = price

    assert "limit_price" in rejection_fields(json.dumps(payload).encode())


@FAST
@given(payload=valid_payloads(order_type="limit"), explicit_null=st.booleans())
def test_limit_order_without_limit_price_is_rejected_naming_limit_price(
    payload: dict[str, Any], explicit_null: bool
) -> None:
    if explicit_null:
        payload["limit_price"] = None
    else:
        del payload["limit_price"]

    assert "limit_price" in rejection_fields(json.dumps(payload).encode())


@FAST
@given(
    payload=valid_payloads(),
    char=st.sampled_from(["a", '"', "é", "€", "\U0001f600"]),
    extra=st.integers(min_value=1, max_value=64),
    ascii_escaped=st.booleans(),
)
def test_rationale_over_4_kib_is_rejected_naming_rationale(
    payload: dict[str, Any], char: str, extra: int, ascii_escaped: bool
) -> None:
    count = MAX_RATIONALE_BYTES // _utf8_size(char) + extra
    payload["rationale"] = char * count

    raw = json.dumps(payload, ensure_ascii=ascii_escaped).encode()

    assert "rationale" in rejection_fields(raw)


@FAST
@given(
    payload=valid_payloads(),
    text=st.text(free_text_chars, max_size=300),
    control=st.sampled_from(CONTROL_CHARS),
    where=st.integers(min_value=0),
    name=st.sampled_from(["rationale", "strategy"]),
)
def test_free_text_with_control_character_is_rejected_naming_the_field(
    payload: dict[str, Any], text: str, control: str, where: int, name: str
) -> None:
    base = text if name == "rationale" else "momentum"
    at = where % (len(base) + 1)
    payload[name] = base[:at] + control + base[at:]

    assert name in rejection_fields(json.dumps(payload).encode())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("account", ""),
        ("account", "a" * 33),
        ("account", "paper 1"),
        ("account", "paper.1"),
        ("account", "paper-1\n"),
        ("intent_id", "not-a-uuid"),
        ("intent_id", 5),
        ("strategy", ""),
        ("strategy", "s" * 65),
        ("rationale", 5),
    ],
)
def test_malformed_field_is_rejected_naming_it(name: str, value: object) -> None:
    payload = {"account": "paper-1", "symbol": "AAPL", "side": "buy", "quantity": "1"}

    assert name in rejection_fields(json.dumps({**payload, name: value}).encode())


@FAST
@given(payload=valid_payloads(), excess=st.integers(min_value=1, max_value=4096))
def test_oversize_payload_is_rejected_with_reason_payload(
    payload: dict[str, Any], excess: int
) -> None:
    # Arrange: valid JSON of a valid intent, padded with whitespace past the bound.
    compact = json.dumps(payload).encode()
    raw = compact + b" " * (MAX_INTENT_BYTES - len(compact) + excess)
    assert parse(SubmitIntent, raw) is not None  # valid apart from its size

    # Act / Assert
    assert rejection_fields(raw) == ["payload"]


@FAST
@given(payload=valid_payloads())
def test_payload_of_exactly_max_bytes_is_accepted(payload: dict[str, Any]) -> None:
    compact = json.dumps(payload).encode()
    raw = compact + b" " * (MAX_INTENT_BYTES - len(compact))

    assert len(raw) == MAX_INTENT_BYTES
    assert parse(SubmitIntent, raw, max_bytes=MAX_INTENT_BYTES) is not None


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"[]", b'"intent"', b"42", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b"{"],
    ids=["empty", "null", "array", "string", "number", "not-utf8", "deeply-nested", "truncated"],
)
def test_payload_that_is_not_a_json_object_is_rejected_with_reason_payload(raw: bytes) -> None:
    assert rejection_fields(raw) == ["payload"]
