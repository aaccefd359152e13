"""Events on the wire, their deterministic ids, the exported schemas, the grants and the
topology: what every agent relies on before a single message is sent."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    AGENTS,
    INTENT_EVENTS,
    MAX_INTENT_BYTES,
    Analysis,
    Citation,
    DeadLetter,
    Envelope,
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    IntentEvent,
    InvalidMessage,
    JournalLine,
    LedgerPosted,
    MarketTick,
    OrderFilled,
    OrderRejected,
    OrderRejectReason,
    OrderType,
    Recommendation,
    RiskApproved,
    RiskReason,
    RiskRejected,
    Side,
    SubmitIntent,
    TradeIntent,
    TradingState,
    TradingStateChanged,
    derive_event_id,
    parse,
)
from contracts import permissions as p
from contracts import topology as t
from contracts.records import DeadLetterRetried, DeadLettersPurged, PurgedLetter
from contracts.schema import MESSAGES, export_schemas

OBSERVED_AT = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
ENVELOPE_FIELDS = {"event_id", "causation_id", "ts", "producer"}


# --- samples ------------------------------------------------------------------------------------


def trade_intent(intent_id: uuid.UUID) -> TradeIntent:
    return TradeIntent(
        intent_id=intent_id,
        account="paper-1",
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal("1.50"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("187.2500"),
        strategy="momentum",
        rationale="Breakout on volume — see note\n\tline two ✓",
    )


def intent_fields(intent_id: uuid.UUID) -> dict[type[IntentEvent], dict[str, object]]:
    """Fields (besides the envelope) of one sample of each intent event."""
    intent = trade_intent(intent_id)
    return {
        IntentAccepted: {
            "intent": intent,
            "reference_price": Decimal("187.10"),
            "reference_price_ts": OBSERVED_AT,
        },
        IntentAnalyzed: {
            "intent": intent,
            "reference_price": None,
            "reference_price_ts": None,
            "analysis": Analysis(
                recommendation=Recommendation.REVIEW,
                confidence=0.25,
                rationale="Limit is above the collar.",
                citations=(Citation(source="risk-limits-policy.md", section="Collars", score=0.8),),
                model="offline-reviewer",
                degraded=True,
            ),
        },
        RiskApproved: {
            "intent": intent,
            "reference_price": Decimal("187.10"),
            "notional_usd": Decimal("280.87500"),
        },
        RiskRejected: {
            "intent": intent,
            "reasons": (RiskReason.MAX_NOTIONAL, RiskReason.STALE_PRICE),
            "detail": "notional 280.88 above 250.00",
        },
        OrderFilled: {
            "intent": intent,
            "order_id": uuid.uuid5(intent_id, "order"),
            "fill_price": Decimal("187.2000"),
            "fill_quantity": Decimal("1.50"),
            "fee": Decimal("0.00"),
            "broker": "paper",
        },
        OrderRejected: {
            "intent": intent,
            "reason": OrderRejectReason.NOT_MARKETABLE,
            "detail": "limit below the best ask",
        },
        LedgerPosted: {
            "account": "paper-1",
            "journal_seq": 7,
            "lines": (
                JournalLine(account="paper-1:cash:USD", currency="USD", amount=Decimal("-280.800")),
                JournalLine(
                    account="paper-1:position:AAPL", currency="AAPL", amount=Decimal("1.50")
                ),
            ),
            "entry_hash": "ab" * 32,
            "prev_hash": "00" * 32,
        },
    }


def intent_event(cls: type[IntentEvent], intent_id: uuid.UUID, **changes: object) -> IntentEvent:
    fields = {**intent_fields(intent_id)[cls], **changes}
    return cls.derive(intent_id=intent_id, producer=Identity.RISK, **fields)


OTHER_EVENTS: dict[type[Envelope], Callable[[], Envelope]] = {
    MarketTick: lambda: MarketTick(
        event_id=uuid.uuid4(),
        producer=Identity.INGESTOR,
        symbol="BTC-USD",
        price=Decimal("64000.10"),
        volume=Decimal("0.0300"),
        observed_at=OBSERVED_AT,
    ),
    TradingStateChanged: lambda: TradingStateChanged(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        state=TradingState.HALTED,
        reason="market-wide circuit breaker",
        requested_by="desk-lead",
    ),
    DeadLetter: lambda: DeadLetter(
        event_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        producer=Identity.EXECUTOR,
        agent=Identity.EXECUTOR,
        reason="invalid_payload",
        error="quantity: expected a plain decimal string",
        original_subject="risk.approved.AAPL",
        original_headers={"Nats-Msg-Id": "abc"},
        original_data_b64="e30=",
        stream="RISK",
        stream_seq=42,
        delivery_count=5,
        intent_id=uuid.uuid4(),
    ),
    DeadLetterRetried: lambda: DeadLetterRetried(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        dlq_seq=7,
        agent=Identity.INGESTOR,
        reason="invalid_payload",
        intent_id=uuid.uuid4(),
        original_subject="intent.submitted.AAPL",
        original_stream="SUBMISSIONS",
        original_stream_seq=3,
        published_stream="SUBMISSIONS",
        published_seq=9,
        msg_id="retry-7",
        original_sha256="0" * 64,
        payload_sha256="1" * 64,
        repaired=True,
        requested_by="desk-lead",
    ),
    DeadLettersPurged: lambda: DeadLettersPurged(
        event_id=uuid.uuid4(),
        producer=Identity.OPS,
        before=datetime(2026, 1, 2, tzinfo=UTC),
        below_seq=40,
        purged=1,
        letters=(
            PurgedLetter(
                dlq_seq=39,
                agent=Identity.RISK,
                reason="invalid_payload",
                intent_id=None,
                original_subject="intent.analyzed.AAPL.x",
                original_stream="INTENTS",
                original_stream_seq=12,
            ),
        ),
    ),
}


def sample(cls: type[Envelope]) -> Envelope:
    if issubclass(cls, IntentEvent):
        return intent_event(cls, uuid.uuid4(), causation_id=uuid.uuid4())
    return OTHER_EVENTS[cls]()


EVENT_TYPES = sorted(
    {*INTENT_EVENTS, *(m for m in MESSAGES.values() if issubclass(m, Envelope))},
    key=lambda cls: cls.kind,
)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.kind)
def test_event_round_trips_through_json(cls: type[Envelope]) -> None:
    # Arrange
    event = sample(cls)

    # Act
    wire = event.model_dump_json()
    again = parse(cls, wire.encode("utf-8"))

    # Assert
    assert again == event
    assert again.model_dump_json() == wire


def test_event_keeps_decimal_strings_exactly_on_the_wire() -> None:
    event = intent_event(OrderFilled, uuid.uuid4())

    wire = json.loads(event.model_dump_json())

    assert (wire["fill_price"], wire["fill_quantity"], wire["fee"]) == ("187.2000", "1.50", "0.00")
    assert (wire["intent"]["quantity"], wire["intent"]["limit_price"]) == ("1.50", "187.2500")


@settings(max_examples=100, deadline=None)
@given(amount=st.from_regex(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?", fullmatch=True))
def test_journal_amount_round_trips_as_the_same_string(amount: str) -> None:
    raw = json.dumps({"account": "paper-1:cash:USD", "currency": "USD", "amount": amount})

    line = parse(JournalLine, raw.encode())

    assert json.loads(line.model_dump_json())["amount"] == amount


def test_event_with_unknown_field_is_rejected_naming_it() -> None:
    wire = json.loads(sample(RiskApproved).model_dump_json())
    wire["approved_by"] = "someone"

    with pytest.raises(InvalidMessage) as caught:
        parse(RiskApproved, json.dumps(wire).encode())

    assert [r.field for r in caught.value.reasons] == ["approved_by"]


# --- deterministic ids --------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(intent_id=st.uuids(), cls=st.sampled_from(INTENT_EVENTS))
def test_derive_gives_the_same_event_id_for_the_same_intent_and_kind(
    intent_id: uuid.UUID, cls: type[IntentEvent]
) -> None:
    # Act: a redelivery rebuilds the event, possibly with another causation and time.
    first = intent_event(cls, intent_id, causation_id=uuid.uuid4())
    second = intent_event(cls, intent_id, causation_id=uuid.uuid4())

    # Assert
    assert first.event_id == second.event_id == derive_event_id(intent_id, cls.kind)


@settings(max_examples=50, deadline=None)
@given(intent_id=st.uuids())
def test_derive_gives_distinct_event_ids_for_distinct_kinds(intent_id: uuid.UUID) -> None:
    ids = {intent_event(cls, intent_id).event_id for cls in INTENT_EVENTS}

    assert len(ids) == len(INTENT_EVENTS)


@settings(max_examples=50, deadline=None)
@given(first=st.uuids(), second=st.uuids(), cls=st.sampled_from(INTENT_EVENTS))
def test_derive_gives_distinct_event_ids_for_distinct_intents(
    first: uuid.UUID, second: uuid.UUID, cls: type[IntentEvent]
) -> None:
    if first == second:
        return

    assert intent_event(cls, first).event_id != intent_event(cls, second).event_id


# --- exported schemas ---------------------------------------------------------------------------


def test_export_schemas_writes_one_valid_json_schema_per_message(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)

    assert sorted(path.name for path in written) == sorted(f"{k}.schema.json" for k in MESSAGES)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in written)
    for path in written:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/{path.name}")
        assert schema["type"] == "object"


@pytest.mark.parametrize(
    "kind", [k for k, m in MESSAGES.items() if issubclass(m, Envelope)], ids=str
)
def test_exported_event_schema_has_the_envelope_fields(tmp_path: Path, kind: str) -> None:
    export_schemas(tmp_path)

    schema = json.loads((tmp_path / f"{kind}.schema.json").read_text())

    expected = set(ENVELOPE_FIELDS)
    if issubclass(MESSAGES[kind], IntentEvent):
        expected.add("intent_id")
    assert expected <= set(schema["properties"])
    assert {"event_id", "producer"} <= set(schema["required"])


def _submitted_schema(directory: Path) -> dict[str, Any]:
    export_schemas(directory)
    schema: dict[str, Any] = json.loads((directory / "intent.submitted.schema.json").read_text())
    return schema


def test_exported_intent_schema_carries_quantity_as_a_patterned_string(tmp_path: Path) -> None:
    schema = _submitted_schema(tmp_path)

    quantity = schema["properties"]["quantity"]
    assert quantity["type"] == "string"
    assert quantity["pattern"]
    assert set(schema["required"]) == {"account", "symbol", "side", "quantity"}


@pytest.mark.parametrize(
    "quantity",
    [
        *("1", "1.50", "999999999.9999999999"),
        *("1e3", "\u0663", "\uff11", " 1", "1.", ".5", "-1", "NaN", "1.12345678901"),
        *("1234567890123", "1\n"),
    ],
)
def test_exported_quantity_pattern_agrees_with_parse(tmp_path: Path, quantity: str) -> None:
    # Arrange
    pattern = _submitted_schema(tmp_path)["properties"]["quantity"]["pattern"]
    raw = json.dumps({"account": "a", "symbol": "A", "side": "buy", "quantity": quantity})

    # Act
    schema_accepts = re.fullmatch(pattern, quantity) is not None
    try:
        parse(SubmitIntent, raw.encode(), max_bytes=MAX_INTENT_BYTES)
        parse_accepts = True
    except InvalidMessage:
        parse_accepts = False

    # Assert
    assert schema_accepts == parse_accepts


# --- permissions --------------------------------------------------------------------------------


def covers(pattern: str, subject: str) -> bool:
    """True when every subject matching `subject` (which may hold wildcards) matches `pattern`."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or have[i] == ">":
            return False
        if token not in ("*", have[i]):
            return False
    return len(have) == len(want)


def overlaps(first: str, second: str) -> bool:
    """True when some subject matches both patterns."""
    a, b = first.split("."), second.split(".")
    for x, y in itertools.zip_longest(a, b):
        if x is None or y is None:
            return False
        if ">" in (x, y):
            return True
        if "*" not in (x, y) and x != y:
            return False
    return True


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("intent.>", "intent.submitted.*", True),
        ("intent.*", "intent.submitted.AAPL", False),
        ("intent.submitted.*", "intent.submitted.AAPL", True),
        ("intent.submitted.AAPL", "intent.submitted.*", False),
        ("intent.>", "intent", False),
        ("$JS.API.>", "$JS.API.STREAM.CREATE.X", True),
    ],
)
def test_subject_matcher_follows_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert covers(pattern, subject) is expected


def test_grants_name_every_identity_once() -> None:
    assert sorted(g.identity for g in p.grants()) == sorted(Identity)


def _forbidden_for_agents() -> list[str]:
    streams = [s.name for s in t.STREAMS] + [kv.stream for kv in t.KV_BUCKETS]
    subjects = [f"control.{action}" for action in ("kill", "resume", "reduce")]
    for stream in streams:
        subjects += [
            f"$JS.API.STREAM.{op}.{stream}" for op in ("CREATE", "UPDATE", "DELETE", "PURGE")
        ]
        subjects += [
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.rogue.intent.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.rogue",
            f"$JS.API.CONSUMER.DELETE.{stream}.rogue",
        ]
    return subjects


@pytest.mark.parametrize("agent", AGENTS, ids=str)
def test_agent_may_not_create_streams_or_consumers_or_publish_control(agent: Identity) -> None:
    grant = p.grant_of(agent)

    allowed = [
        (allowed, subject)
        for subject in _forbidden_for_agents()
        for allowed in grant.publish
        if covers(allowed, subject)
    ]

    assert allowed == []


@pytest.mark.parametrize("agent", AGENTS, ids=str)
def test_agent_subscribes_to_its_own_private_inbox_only(agent: Identity) -> None:
    grant = p.grant_of(agent)

    assert f"_INBOX.{agent}.>" in grant.subscribe
    others = [i for i in Identity if i is not agent]
    leaks = [
        (allowed, other)
        for other in others
        for allowed in grant.subscribe
        if covers(allowed, f"_INBOX.{other}.reply")
    ]
    assert leaks == []


# --- topology -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", t.ALL_CONSUMERS, ids=lambda c: c.durable)
def test_consumer_filter_is_covered_by_its_stream_subjects(spec: t.ConsumerSpec) -> None:
    stream = t.stream(spec.stream)  # KeyError when the stream does not exist

    assert any(covers(subject, spec.filter_subject) for subject in stream.subjects)


def test_consumer_names_are_unique() -> None:
    names = [(c.stream, c.durable) for c in t.ALL_CONSUMERS]

    assert len(names) == len(set(names))


def test_no_two_streams_claim_overlapping_subjects() -> None:
    clashes = [
        (a.name, x, b.name, y)
        for a, b in itertools.combinations(t.STREAMS, 2)
        for x in a.subjects
        for y in b.subjects
        if overlaps(x, y)
    ]

    assert clashes == []
