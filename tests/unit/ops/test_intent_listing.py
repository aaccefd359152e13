"""`intent list` and `intent watch` without a server: filters, the join by subject, trust."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.deadletter import dead_letter
from bus.replay import StoredMsg
from bus.signing import Signer, Verifier
from contracts import (
    Envelope,
    Identity,
    TradeIntent,
)
from contracts import subjects as s
from contracts import topology as t
from contracts.kinds import Outcome
from ops.intents import listing
from ops.intents.listing import group_by_intent, select
from ops.intents.live import SymbolFilter, describe_live
from ops.intents.query import BadFilter, IntentQuery
from tests.support import events

KEYS = {i: Ed25519PrivateKey.generate() for i in Identity}
SIGNERS = {i: Signer(i, k) for i, k in KEYS.items()}
VERIFIER = Verifier({str(i): k.public_key() for i, k in KEYS.items()})
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
SINCE = T0 - timedelta(hours=1)
STREAM_OF = {"intent": t.INTENTS, "risk": t.RISK, "order": t.ORDERS, "ledger": t.LEDGER}


class Store:
    """Stores messages as the server would: a sequence per stream, a time per message."""

    def __init__(self) -> None:
        self.seqs: dict[str, count[int]] = {}
        self.clock = count()
        self.msgs: list[StoredMsg] = []

    def put(self, subject: str, data: bytes, signer: Identity | None) -> StoredMsg:
        stream = t.DLQ if subject.startswith("dlq.") else STREAM_OF[subject.partition(".")[0]]
        headers = SIGNERS[signer].headers(subject, data) if signer else {}
        at = T0 + timedelta(seconds=next(self.clock))
        msg = StoredMsg(stream, next(self.seqs.setdefault(stream, count(1))), subject, headers,
                        data, at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))  # fmt: skip
        self.msgs.append(msg)
        return msg

    def event(self, subject: str, event: Envelope, signer: Identity | None = None) -> StoredMsg:
        return self.put(subject, event.model_dump_json().encode(), signer or event.producer)


def trade(iid: uuid.UUID, symbol: str = "AAPL", account: str = "paper-1") -> TradeIntent:
    return events.trade_intent(intent_id=iid, symbol=symbol, account=account)


def accept(store: Store, iid: uuid.UUID, symbol: str = "AAPL", account: str = "paper-1") -> None:
    event = events.intent_accepted(trade(iid, symbol, account))
    store.event(events.subject_of(event), event)


def reject(
    store: Store, iid: uuid.UUID, symbol: str = "AAPL", signer: Identity | None = None
) -> StoredMsg:
    event = events.risk_rejected(trade(iid, symbol), causation_id=uuid.uuid4())
    return store.event(events.subject_of(event), event, signer)


def post(store: Store, iid: uuid.UUID, account: str = "paper-1") -> None:
    fill = events.order_filled(
        trade(iid, account=account), price="190", fee="0.19", causation_id=uuid.uuid4()
    )
    event = events.ledger_posted(fill)
    store.event(events.subject_of(event), event)


SUBMITTED: dict[tuple[str, int], bytes] = {}
"""What `refuse` had clients submit, by (stream, sequence): what the dead letters refer to."""


def refuse(store: Store, iid: uuid.UUID, symbol: str = "BTC-USD", seq: int = 7) -> None:
    """The ingestor dead-letters a submission that names `iid`."""
    data = json.dumps({"intent_id": str(iid), "account": "paper-1", "symbol": symbol,
                       "side": "hold", "quantity": "-1"}).encode()  # fmt: skip
    emit = dead_letter(agent=Identity.INGESTOR, reason="invalid_payload", error="bad side",
                       subject=s.of(s.INTENT_SUBMITTED, symbol), headers={}, data=data,
                       stream=t.SUBMISSIONS, stream_seq=seq, delivery_count=1,
                       intent_id=iid)  # fmt: skip
    SUBMITTED[(t.SUBMISSIONS, seq)] = data
    store.event(emit.subject, emit.event)


def listed(store: Store, **query: object) -> list[tuple[str, str]]:
    rows, _ = select(store.msgs, IntentQuery(since=SINCE, **query), VERIFIER)  # type: ignore[arg-type]
    return [(r.intent_id, r.outcome) for r in rows]


@pytest.fixture
def desk() -> tuple[Store, dict[str, uuid.UUID]]:
    """Four intents: filled, rejected, pending, refused by the ingestor (in that order)."""
    store, ids = Store(), {k: uuid.uuid4() for k in ("filled", "rejected", "pending", "refused")}
    accept(store, ids["filled"])
    accept(store, ids["rejected"], symbol="MSFT", account="paper-2")
    accept(store, ids["pending"])
    refuse(store, ids["refused"])
    post(store, ids["filled"])
    reject(store, ids["rejected"], symbol="MSFT")
    return store, ids


def test_each_intent_is_listed_newest_first_with_its_outcome(desk) -> None:  # type: ignore[no-untyped-def]
    store, ids = desk
    assert listed(store) == [
        (str(ids["refused"]), Outcome.DEAD_LETTERED),
        (str(ids["pending"]), Outcome.PENDING),
        (str(ids["rejected"]), Outcome.REJECTED),
        (str(ids["filled"]), Outcome.FILLED),
    ]


def test_filters_select_by_outcome_symbol_and_account(desk) -> None:  # type: ignore[no-untyped-def]
    store, ids = desk
    assert listed(store, outcome=Outcome.FILLED) == [(str(ids["filled"]), Outcome.FILLED)]
    assert listed(store, outcome=Outcome.PENDING) == [(str(ids["pending"]), Outcome.PENDING)]
    assert listed(store, symbol="MSFT") == [(str(ids["rejected"]), Outcome.REJECTED)]
    assert listed(store, symbol="BTC-USD") == [(str(ids["refused"]), Outcome.DEAD_LETTERED)]
    assert listed(store, account="paper-2") == [(str(ids["rejected"]), Outcome.REJECTED)]
    assert listed(store, symbol="NVDA") == []


def test_limit_keeps_the_newest_and_says_more_match(desk) -> None:  # type: ignore[no-untyped-def]
    store, ids = desk
    rows, more = select(store.msgs, IntentQuery(since=SINCE, limit=2), VERIFIER)
    assert [r.intent_id for r in rows] == [str(ids["refused"]), str(ids["pending"])]
    assert more
    assert not select(store.msgs, IntentQuery(since=SINCE, limit=4), VERIFIER)[1]


def test_a_refused_submission_shows_what_the_client_sent(desk) -> None:  # type: ignore[no-untyped-def]
    store, _ = desk
    query = IntentQuery(since=SINCE, outcome=Outcome.DEAD_LETTERED)
    rows, _ = select(store.msgs, query, VERIFIER, originals=SUBMITTED)
    (row,) = rows
    assert (row.symbol, row.side, row.quantity, row.reasons) == (
        "BTC-USD", "hold", "-1", ["invalid_payload"]
    )  # fmt: skip


def test_a_refused_submission_no_longer_stored_is_listed_without_its_terms(desk) -> None:  # type: ignore[no-untyped-def]
    store, _ = desk
    query = IntentQuery(since=SINCE, outcome=Outcome.DEAD_LETTERED)
    (row,) = select(store.msgs, query, VERIFIER, originals={})[0]
    assert (row.symbol, row.side, row.quantity, row.reasons) == (
        "BTC-USD", None, None, ["invalid_payload"]
    )  # fmt: skip


def test_reads_push_symbol_and_account_into_the_subjects() -> None:
    reads = dict(IntentQuery(since=SINCE, symbol="AAPL", account="paper-1").reads())
    assert reads[t.INTENTS] == "intent.accepted.AAPL.*"
    assert reads[t.RISK] == "risk.rejected.AAPL.*"
    assert reads[t.LEDGER] == "ledger.posted.paper-1.*"
    assert reads[t.DLQ] == "dlq.*.*"


@pytest.mark.parametrize("symbol", ["AAPL.*", ">", "A B", "*", ""])
def test_a_filter_cannot_smuggle_wildcards_into_a_subject(symbol: str) -> None:
    with pytest.raises(BadFilter):
        IntentQuery(since=SINCE, symbol=symbol)


def test_limit_below_one_is_refused() -> None:
    with pytest.raises(BadFilter):
        IntentQuery(since=SINCE, limit=0)


def test_a_forged_rejection_is_flagged_and_decides_nothing() -> None:
    store, iid = Store(), uuid.uuid4()
    accept(store, iid)
    reject(store, iid, signer=Identity.ANALYST)  # the analyst may not publish risk.rejected
    rows, _ = select(store.msgs, IntentQuery(since=SINCE), VERIFIER)
    (row,) = rows
    assert row.outcome == Outcome.PENDING
    (bad,) = row.untrusted
    assert bad.kind == "risk.rejected" and bad.signature == "valid"
    assert bad.problem == f"signed by analyst, but {bad.subject} is published by risk"


def test_altered_bytes_fail_the_signature() -> None:
    store, iid = Store(), uuid.uuid4()
    accept(store, iid)
    msg = reject(store, iid)
    store.msgs[-1] = replace(msg, data=msg.data.replace(b"max_notional", b"max_quantity"))
    rows, _ = select(store.msgs, IntentQuery(since=SINCE), VERIFIER)
    assert rows[0].outcome == Outcome.PENDING
    assert rows[0].untrusted[0].signature == "invalid"


def test_the_id_comes_from_the_subject_not_the_header_or_the_body() -> None:
    store, victim, other = Store(), uuid.uuid4(), uuid.uuid4()
    accept(store, victim)
    msg = reject(store, other)  # a genuine rejection of another intent, claiming the victim
    store.msgs[-1] = replace(msg, headers={**msg.headers, "Tradeops-Intent-Id": str(victim)})
    assert set(group_by_intent(store.msgs)) == {str(victim), str(other)}
    assert listed(store) == [(str(victim), Outcome.PENDING)]


def test_a_dead_letter_of_a_duplicate_submission_does_not_end_an_accepted_intent() -> None:
    store, iid = Store(), uuid.uuid4()
    accept(store, iid)
    post(store, iid)
    refuse(store, iid)  # the same id submitted again with bad bytes
    assert listed(store) == [(str(iid), Outcome.FILLED)]


def test_live_events_name_kind_symbol_intent_producer_and_signature() -> None:
    iid = uuid.uuid4()
    event = events.intent_accepted(trade(iid))
    subject = s.intent_event(s.INTENT_ACCEPTED, "AAPL", iid)
    data = event.model_dump_json().encode()
    live = describe_live(subject, data, SIGNERS[Identity.INGESTOR].headers(subject, data),
                         VERIFIER, T0)  # fmt: skip
    assert (live.kind, live.symbol, live.intent_id, live.producer, live.signature) == (
        "intent.accepted", "AAPL", str(iid), "ingestor", "valid"
    )  # fmt: skip
    assert live.problem is None
    unsigned = describe_live(subject, data, {}, VERIFIER, T0)
    assert unsigned.signature == "unsigned" and unsigned.problem is not None


def test_a_live_submission_is_the_clients_unsigned_claim() -> None:
    iid = uuid.uuid4()
    body = json.dumps({"intent_id": str(iid), "symbol": "AAPL"}).encode()
    live = describe_live("intent.submitted.AAPL", body, None, VERIFIER, T0)
    assert (live.kind, live.symbol, live.intent_id, live.producer) == (
        "intent.submitted", "AAPL", str(iid), "client"
    )  # fmt: skip
    assert live.signature == "unsigned" and live.problem is None


def test_symbol_filter_keeps_postings_of_its_intents_only() -> None:
    keep, iid = SymbolFilter("AAPL"), str(uuid.uuid4())
    base = describe_live("intent.submitted.AAPL", b"{}", None, VERIFIER, T0)
    accepted = base.__class__(**{**base.__dict__, "kind": "intent.accepted", "intent_id": iid})
    posting = base.__class__(**{**base.__dict__, "kind": "ledger.posted", "symbol": None,
                                "account": "paper-1", "intent_id": iid})  # fmt: skip
    stranger = base.__class__(**{**posting.__dict__, "intent_id": str(uuid.uuid4())})
    other = base.__class__(**{**base.__dict__, "symbol": "MSFT"})
    assert keep.keep(accepted) and keep.keep(posting)
    assert not keep.keep(stranger) and not keep.keep(other)


async def test_the_window_is_read_once_newest_slice_first_until_the_limit_is_met(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, now = Store(), T0 + timedelta(hours=2)
    store.clock = count(0, 60)  # one message a minute from T0: the desk's last two hours
    ids = [uuid.uuid4() for _ in range(60)]
    for iid in ids:
        accept(store, iid)
    slices: list[tuple[datetime, datetime | None]] = []

    async def read_window(_nc, _query, start, end=None, *, timeout_s=10.0):  # type: ignore[no-untyped-def]
        slices.append((start, end))
        return [
            m for m in store.msgs if start <= m.timestamp and (end is None or m.timestamp < end)
        ]

    monkeypatch.setattr(listing, "read_window", read_window)
    query = IntentQuery(since=now - timedelta(hours=3), limit=10)
    found = await listing.list_intents(None, query, VERIFIER, now=now)  # type: ignore[arg-type]
    assert [r.intent_id for r in found.rows] == [str(i) for i in reversed(ids[-10:])]
    assert slices == [(now - timedelta(minutes=5), None),
                      (now - timedelta(minutes=20), now - timedelta(minutes=5)),
                      (now - timedelta(minutes=80), now - timedelta(minutes=20))]  # fmt: skip
    assert found.searched_from == now - timedelta(minutes=80) and found.more


async def test_a_window_starting_in_the_future_reads_nothing() -> None:
    query = IntentQuery(since=T0 + timedelta(days=365 * 900))
    found = await listing.list_intents(None, query, VERIFIER, now=T0)  # type: ignore[arg-type]
    assert found.rows == [] and not found.more
