"""The audit names an approval whose price is off the market of its time (ops.audit.market).

The market of an approval is the latest usable tick of its symbol stored before it; both are
placed in time by when the server stored them. Approvals are written as a risk gate holding its
own key might write them: any price, any `ts`, any payload.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.replay import StoredMsg, stored_time
from contracts import Identity, MarketTick
from contracts import topology as t
from ops.audit.facts import fact_of
from ops.audit.market import (
    Approval,
    MarketHistory,
    MarketMerge,
    Tick,
    outside_collar,
    price_of,
    read_approval,
    tick_price,
)
from ops.audit.report import AuditReport, Check
from tests.support import events
from tests.support.audit import Streams

COLLAR = Decimal(5)
START = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """The server's stored time `seconds` after START, as it writes it (nanoseconds, Z)."""
    return (START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def approval(
    streams: Streams,
    seconds: float,
    price: str,
    *,
    symbol: str = "AAPL",
    ts: datetime | None = None,
    raw: bytes | None = None,
    trusted: bool = True,
) -> Approval:
    """A risk-signed approval at `price`, stored `seconds` after START (`raw`: other bytes)."""
    event = events.risk_approved(events.trade_intent(symbol=symbol), reference_price="1", ts=ts)
    data = event.model_dump_json().replace('"reference_price":"1"', f'"reference_price":"{price}"')
    body = raw if raw is not None else data.encode()
    headers = {"Tradeops-Signer": "risk", "Tradeops-Signature": "x"}
    subject = f"risk.approved.{symbol}.{event.intent_id}"
    fact = fact_of(streams.store(subject, body, headers))
    fact.stored_at, fact.trusted = stamp(seconds), trusted
    return read_approval(fact, body)


class Market:
    """MARKET's messages, in stream order."""

    def __init__(self) -> None:
        self.msgs: list[StoredMsg] = []

    def tick(
        self, seconds: float, price: str, symbol: str = "AAPL", *, observed: datetime | None = None
    ) -> StoredMsg:
        tick = MarketTick(event_id=uuid.uuid4(), producer=Identity.INGESTOR, symbol=symbol,
                          price=Decimal(price), observed_at=observed or START)  # fmt: skip
        return self.raw(seconds, f"market.tick.{symbol}", tick.model_dump_json().encode())

    def raw(self, seconds: float, subject: str, data: bytes) -> StoredMsg:
        msg = StoredMsg(t.MARKET, len(self.msgs) + 1, subject, {}, data, stamp(seconds))
        self.msgs.append(msg)
        return msg


def merged(approvals: list[Approval], market: Market) -> MarketMerge:
    """Feed MARKET to the merge as the audit does: in stream order, until it needs no more."""
    merge = MarketMerge((a for a in approvals if a.fact.trusted), COLLAR)
    for msg in market.msgs:
        if merge.done:
            break
        merge.add(msg)
    merge.finish()
    return merge


def judged(
    approvals: list[Approval], market: Market, history: MarketHistory | None = None
) -> tuple[dict[int, str], int]:
    """Return what the check names, by RISK sequence, and how many it could not compare."""
    merge = merged(approvals, market)
    unchecked = merge.settle(history or MarketHistory())
    return {a.fact.seq: what for a, what in merge.problems}, unchecked


def iid(a: Approval) -> int:
    """Where the approval is stored in RISK (a forged payload may name no intent)."""
    return a.fact.seq


# -- the comparison ------------------------------------------------------------------------------


def test_a_price_exactly_on_the_collar_is_inside_and_the_smallest_step_past_it_is_outside() -> None:
    market = Decimal("200")

    assert not outside_collar(Decimal("210"), market, COLLAR)
    assert not outside_collar(Decimal("190"), market, COLLAR)
    assert outside_collar(Decimal("210.0000000001"), market, COLLAR)
    assert outside_collar(Decimal("189.9999999999"), market, COLLAR)
    assert outside_collar(Decimal("2"), market, COLLAR) and outside_collar(market * 100, market, 0)


def test_a_price_is_read_by_the_contract_s_rule_and_nothing_looser() -> None:
    assert price_of("190.25") == Decimal("190.25")
    for forged in ("NaN", "Infinity", "-190", "0", "1.9e2", " 190", 190, 190.0, None, True, ""):
        assert price_of(forged) is None, forged


def test_a_tick_counts_only_as_a_json_object_naming_its_subject_s_symbol_with_a_valid_price() -> (
    None
):
    good = json.dumps({"symbol": "AAPL", "price": "190"}).encode()

    assert tick_price("AAPL", good) == Decimal(190)
    assert tick_price("MSFT", good) is None
    assert tick_price("AAPL", b"190") is None and tick_price("AAPL", b"\xff{") is None
    assert tick_price("AAPL", json.dumps({"symbol": "AAPL", "price": 190}).encode()) is None
    assert tick_price("AAPL", json.dumps(["AAPL", "190"]).encode()) is None


# -- the merge -----------------------------------------------------------------------------------


def test_an_approval_within_the_collar_of_the_last_tick_passes_one_beyond_it_is_named() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "200")
    near, far, low = (approval(streams, 1, p) for p in ("209.99", "211", "2"))

    named, unchecked = judged([near, far, low], market)

    assert set(named) == {iid(far), iid(low)} and unchecked == 0
    assert named[iid(far)] == (
        f"approved at 211 while the market was 200 (AAPL, MARKET #1 stored {stamp(0)}): "
        f"5.50% away, beyond the 5% collar; approval stored {stamp(1)}"
    )


def test_the_market_is_the_latest_tick_stored_before_the_approval_not_one_stored_after() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    before_jump = approval(streams, 1, "100")
    market.tick(2, "200")
    after_jump = approval(streams, 3, "100")
    market.tick(4, "100")  # the market comes back: too late for the approval at 3 s

    named, _ = judged([before_jump, after_jump], market)

    assert list(named) == [iid(after_jump)]
    assert "the market was 200 (AAPL, MARKET #2" in named[iid(after_jump)]


def test_a_tick_stored_in_the_same_microsecond_as_the_approval_counts_as_before_it() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    market.tick(1, "200")
    same_time = approval(streams, 1, "200")

    assert judged([same_time], market)[0] == {}


def test_times_are_the_server_s_an_approval_stamped_back_to_an_old_price_is_still_named() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    market.tick(60, "200")
    backdated = approval(streams, 61, "100", ts=START + timedelta(seconds=1))

    assert list(judged([backdated], market)[0]) == [iid(backdated)]


def test_a_tick_observed_long_ago_but_stored_now_is_the_market_now() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    market.tick(5, "200", observed=START - timedelta(days=365))
    market.tick(6, "100", observed=START + timedelta(days=365))  # stamped in the future: later
    on_the_old_stamp = approval(streams, 5.5, "100")

    assert list(judged([on_the_old_stamp], market)[0]) == [iid(on_the_old_stamp)]


def test_no_tick_before_the_approval_is_named_even_when_one_follows_it() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "200", symbol="MSFT")
    first = approval(streams, 1, "200")
    market.tick(2, "200")

    named, _ = judged([first], market)

    assert named == {
        iid(first): (
            f"approved at 200, but no tick of AAPL was stored in MARKET before the approval "
            f"(stored {stamp(1)})"
        )
    }


def test_a_symbol_with_no_tick_at_all_is_named_even_with_an_empty_market() -> None:
    streams = Streams()
    nowhere = approval(streams, 1, "1", symbol="ZZZZ")

    assert list(judged([nowhere], Market())[0]) == [iid(nowhere)]


def test_malformed_ticks_and_ticks_naming_another_symbol_are_no_market_the_last_good_one_is() -> (
    None
):
    streams, market = Streams(), Market()
    market.tick(0, "100")
    market.raw(1, "market.tick.AAPL", b'{"symbol": "AAPL", "price": "NaN"}')
    market.raw(2, "market.tick.AAPL", json.dumps({"symbol": "MSFT", "price": "1"}).encode())
    market.raw(3, "market.tick.AAPL", b"not json")
    market.raw(4, "market.tick.AAPL.extra", json.dumps({"symbol": "AAPL", "price": "1"}).encode())
    on_the_good_tick = approval(streams, 5, "100")
    on_a_forged_tick = approval(streams, 5, "1")

    named, _ = judged([on_the_good_tick, on_a_forged_tick], market)

    assert list(named) == [iid(on_a_forged_tick)]
    assert "the market was 100 (AAPL, MARKET #1 " in named[iid(on_a_forged_tick)]


def test_an_approval_whose_price_cannot_be_read_is_named_not_skipped() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    nan = approval(streams, 1, "NaN")
    as_number = approval(streams, 1, "100", raw=b'{"reference_price": 100, "intent": {}}')
    not_json = approval(streams, 1, "100", raw=b"\x00garbage")

    named, _ = judged([nan, as_number, not_json], market)

    assert "not a valid price" in named[iid(nan)]
    assert len(named) == 3 and all("stored" in what for what in named.values())


def test_an_untrusted_approval_is_left_to_the_provenance_check() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    forged = approval(streams, 1, "1", trusted=False)

    assert judged([forged], market) == ({}, 0)


def test_the_merge_needs_no_tick_past_the_last_approval_of_each_symbol() -> None:
    streams, market = Streams(), Market()
    approvals = [approval(streams, 1, "100"), approval(streams, 2, "300", symbol="MSFT")]
    merge = MarketMerge(approvals, COLLAR)
    for msg in (market.tick(0, "100"), market.tick(1.5, "100"), market.tick(1.6, "300", "MSFT")):
        merge.add(msg)
    assert not merge.done  # MSFT's approval at 2 s may still see a newer tick
    merge.add(market.tick(3, "999", symbol="MSFT"))
    assert merge.done and merge.compared == 2 and merge.problems == []


def test_an_approval_that_met_no_tick_in_the_read_is_compared_with_the_tick_before_it() -> None:
    streams, market = Streams(), Market()
    quiet, moved, other = (approval(streams, 5, p) for p in ("101", "300", "100"))
    market.tick(6, "100")
    merge = merged([quiet, moved, other], market)
    assert len(merge.without_tick) == 3  # the read began after the last tick before them

    merge.seed("AAPL", Tick(1, Decimal(100), START, stamp(0)))
    merge.seed("AAPL", None)

    assert merge.without_tick == [] and merge.compared == 3
    assert [a for a, _ in merge.problems] == [moved]


# -- what MARKET no longer holds -------------------------------------------------------------------


def test_an_approval_older_than_every_tick_market_still_holds_is_counted_not_named() -> None:
    streams, market = Streams(), Market()
    old = approval(streams, 1, "100")
    market.tick(10, "100")
    expired = MarketHistory(trimmed=True, first_at=START + timedelta(seconds=10), cap=100_000)

    assert judged([old], market, expired) == ({}, 1)
    assert list(judged([old], market, MarketHistory())[0]) == [iid(old)]  # nothing was removed


def test_an_approval_after_the_oldest_tick_held_without_a_tick_of_its_own_is_named() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100", symbol="MSFT")
    late = approval(streams, 5, "100")
    expired = MarketHistory(trimmed=True, first_at=START, cap=100_000, counts={"AAPL": 0})

    assert list(judged([late], market, expired)[0]) == [iid(late)]


def test_a_symbol_at_its_per_subject_cap_may_have_lost_the_ticks_before_its_oldest() -> None:
    history = MarketHistory(trimmed=True, first_at=START, cap=3, counts={"AAPL": 3, "MSFT": 2})
    later = START + timedelta(seconds=1)

    assert history.lost_before("AAPL", later) and not history.lost_before("MSFT", later)
    assert not MarketHistory(trimmed=False, cap=3, counts={"AAPL": 3}).lost_before("AAPL", later)


def test_a_named_approval_is_reported_as_check_market_at_its_place_in_risk() -> None:
    streams, market = Streams(), Market()
    market.tick(0, "100")
    far = approval(streams, 1, "150")
    merge = merged([far], market)
    report = AuditReport("test")
    for a, what in merge.problems:
        report.error(Check.MARKET, what, stream=a.fact.stream, seq=a.fact.seq,
                     intent_id=a.fact.intent_id)  # fmt: skip

    line = report.discrepancies[0].line()
    assert line.startswith(f"[market] RISK #1 intent {far.fact.intent_id}: approved at 150 ")


# -- against the plain definition ------------------------------------------------------------------


def plain(approvals: list[Approval], market: Market) -> set[int]:
    """The definition, without the merge: for each approval, scan every earlier tick."""
    named: set[int] = set()
    for a in approvals:
        before = [
            m for m in market.msgs
            if stored_time(m.time) <= a.at and tick_price(a.symbol or "", m.data) is not None
            and m.subject == f"market.tick.{a.symbol}"
        ]  # fmt: skip
        price = tick_price(a.symbol or "", before[-1].data) if before else None
        assert a.price is not None
        if price is None or outside_collar(a.price, price, COLLAR):
            named.add(a.fact.seq)
    return named


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # stored at, in seconds
            st.booleans(),  # a tick (True) or an approval
            st.sampled_from(["AAPL", "MSFT"]),
            st.sampled_from(["90", "95", "100", "105", "106", "150"]),
        ),
        max_size=30,
    )
)
def test_the_merge_names_exactly_what_the_plain_definition_names(
    script: list[tuple[int, bool, str, str]],
) -> None:
    streams, market, approvals = Streams(), Market(), []
    for seconds, is_tick, symbol, price in sorted(script, key=lambda step: step[0]):
        if is_tick:
            market.tick(seconds, price, symbol)
        else:
            approvals.append(approval(streams, seconds, price, symbol=symbol))

    assert set(judged(approvals, market)[0]) == plain(approvals, market)
