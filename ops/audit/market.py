"""Each approval's price against MARKET at its time: an approval decided on a price far from the
market is named (check `market`), whoever signed it.

For each trusted `risk.approved` event, the market at its time is the latest tick of its intent's
symbol stored in MARKET before the approval was stored. The approval is named when its
`reference_price` (the price the gate checked its limits at) lies further from that tick than the
gate's own collar (`[limits] price_collar_pct`, the bound `agents.risk.checks.trusted_price` puts
on a carried price), or when no tick of the symbol was stored before it. Times are the server's
stored times, never a publisher's stamp: neither the approval's `ts` nor a tick's `observed_at`
moves an event in time. A tick stored in the same microsecond as the approval counts as before it.

A tick is what the gate would read (`agents.risk.agent`): on `market.tick.<SYMBOL>`, a JSON object
naming that symbol, with a valid `price` (the contract's `Price`); anything else on the subject
is passed over, and the symbol's previous tick still holds. Ticks are not signature-checked: the
server lets only the ingestor and ops publish `market.tick.*`, and the gate trusts them so too.

MARKET is read once, in stream order, with the subject filter `market.tick.*`, from `LOOKBACK_S`
before the first approval (or its first retained message) and only until every approval is judged:
an audit of the last day does not read the week MARKET keeps. Per symbol the merge keeps the
latest tick and a cursor into that symbol's approvals (sorted by stored time): memory is one tick
per symbol whatever the history, and the read is bounded by MARKET's retention (`[storage]` age
and bytes, dropping the oldest; 100,000 ticks per symbol). A symbol whose approvals met no tick in
the read has its last earlier tick looked up. An approval stored before the retained ticks of its
symbol cannot be compared: it is counted in a note, not named.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from nats.aio.client import Client as NATS
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from pydantic import TypeAdapter, ValidationError

from bus.replay import StoredMsg, read_batches, read_one, stored_time
from contracts import subjects as s
from contracts import topology as t
from contracts.types import Price
from ops.audit.facts import Fact
from ops.audit.report import AuditReport, Check

HUNDRED = Decimal(100)
TICKS = s.every(s.MARKET_TICK)
"""The subjects read: `market.tick.*`."""
READ_BATCH = 1000
LOOKBACK_S = 300.0
"""MARKET is read from this long before the first approval: the gate approves only on a price
at most `[limits] stale_price_s` (30 s) old, so the tick each approval was decided on is normally
inside; a symbol with no tick there is looked up before it (`last_tick_before`)."""
_PRICE: TypeAdapter[Decimal] = TypeAdapter(Price)


def price_of(value: object) -> Decimal | None:
    """Return `value` as a price by the contract's rule (a positive decimal string), else None."""
    try:
        return _PRICE.validate_python(value)
    except ValidationError:
        return None


def outside_collar(price: Decimal, market: Decimal, collar_pct: Decimal) -> bool:
    """Whether `price` lies more than `collar_pct` percent of `market` away from it (the gate's
    rule for a carried price: exactly on the collar is inside)."""
    return abs(price - market) > market * collar_pct / HUNDRED


@dataclass(frozen=True, slots=True)
class Approval:
    """A `risk.approved` event as this check reads it."""

    fact: Fact
    price: Decimal | None
    """Its `reference_price` (None when it is not a valid price)."""
    at: datetime
    """When the server stored it."""

    @property
    def symbol(self) -> str | None:
        """The approved intent's symbol, as the audit reads the intent's terms."""
        return self.fact.terms[1] if self.fact.terms is not None else None


def read_approval(fact: Fact, data: bytes) -> Approval:
    """Return what this check needs of an approval (never raises on a malformed payload)."""
    try:
        body: Any = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    price = price_of(body.get("reference_price")) if isinstance(body, dict) else None
    return Approval(fact, price, stored_time(fact.stored_at))


@dataclass(frozen=True, slots=True)
class Tick:
    """One usable tick: where MARKET stored it, when, and its price."""

    seq: int
    price: Decimal
    at: datetime
    stored: str
    """The server's stored time as it wrote it."""


def tick_price(symbol: str, data: bytes) -> Decimal | None:
    """Return the price of a tick stored on `market.tick.<symbol>`, None when the gate would pass
    it over (not a JSON object, another symbol, no valid price)."""
    try:
        body: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("symbol") != symbol:
        return None
    return price_of(body.get("price"))


def price_problem(approval: Approval, tick: Tick, collar_pct: Decimal) -> str | None:
    """Return what is wrong with one approval's price against the market then, else None."""
    if approval.price is None:
        return _unreadable(approval)
    if not outside_collar(approval.price, tick.price, collar_pct):
        return None
    away_pct = abs(approval.price - tick.price) / tick.price * HUNDRED
    return (
        f"approved at {approval.price} while the market was {tick.price} "
        f"({approval.symbol}, {t.MARKET} #{tick.seq} stored {tick.stored}): {away_pct:.2f}% away, "
        f"beyond the {collar_pct}% collar; approval stored {approval.fact.stored_at}"
    )


def no_tick(approval: Approval) -> str:
    """What is wrong with an approval when no tick of its symbol was stored before it."""
    return (
        f"approved at {approval.price}, but no tick of {approval.symbol} was stored in "
        f"{t.MARKET} before the approval (stored {approval.fact.stored_at})"
    )


def _unreadable(approval: Approval) -> str | None:
    stored = approval.fact.stored_at
    if approval.symbol is None:
        return f"the approved intent names no readable symbol; approval stored {stored}"
    if approval.price is None:
        return (
            f"the approved price (reference_price) is not a valid price; approval stored {stored}"
        )
    return None


@dataclass(frozen=True)
class MarketHistory:
    """What MARKET may have lost: ticks older than its first retained message (age), and a
    symbol's oldest ticks once it holds as many as the per-symbol cap."""

    trimmed: bool = False
    """Messages were removed from MARKET (its first sequence is past 1, or some are deleted):
    by age or bytes the oldest go first, so every tick stored since `first_at` is still held."""
    first_at: datetime | None = None
    """When its first retained message was stored (None: it holds none)."""
    cap: int = -1
    """Its `max_msgs_per_subject` (<= 0: none)."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Retained ticks per symbol (of the symbols asked about)."""

    def lost_before(self, symbol: str, at: datetime) -> bool:
        """Whether a tick of `symbol` stored before `at` may have been removed since."""
        if not self.trimmed:
            return False
        if self.first_at is None or at < self.first_at:
            return True
        return 0 < self.cap <= self.counts.get(symbol, 0)


class MarketMerge:
    """The approvals (by stored time) merged with MARKET's ticks (in stream order), per symbol."""

    def __init__(self, approvals: Iterable[Approval], collar_pct: Decimal) -> None:
        self.collar_pct = collar_pct
        self.problems: list[tuple[Approval, str]] = []
        self.without_tick: list[Approval] = []
        """Approvals that met no tick of their symbol in the read: compared with the tick before
        the read (`seed`), else named unless MARKET has lost the ticks of their time (`settle`)."""
        self.compared = 0
        self.read = 0
        """MARKET messages read (by `add`, and counted in by the caller's other reads)."""
        self.first_seq: int | None = None
        """The first MARKET sequence read."""
        self._pending: dict[str, list[Approval]] = defaultdict(list)
        self._latest: dict[str, Tick] = {}
        for approval in approvals:
            unreadable = _unreadable(approval)
            if unreadable is not None:
                self.problems.append((approval, unreadable))
            elif approval.symbol is not None:
                self._pending[approval.symbol].append(approval)
        for mine in self._pending.values():
            mine.sort(key=lambda a: (a.at, a.fact.seq))
        self._next = dict.fromkeys(self._pending, 0)
        self._open = set(self._pending)

    @property
    def done(self) -> bool:
        """Every approval is judged: the rest of MARKET cannot change anything."""
        return not self._open

    @property
    def first_approval_at(self) -> datetime | None:
        """When the first approval still to judge was stored."""
        return min((mine[0].at for mine in self._pending.values() if mine), default=None)

    def add(self, msg: StoredMsg) -> None:
        """Take the next message of MARKET (stream order)."""
        self.read += 1
        if self.first_seq is None:
            self.first_seq = msg.seq
        symbol = s.last_token(msg.subject)
        if symbol not in self._open or msg.subject != s.of(s.MARKET_TICK, symbol):
            return
        at = stored_time(msg.time)
        self._judge(symbol, before=at)
        price = tick_price(symbol, msg.data)
        if price is not None:
            self._latest[symbol] = Tick(msg.seq, price, at, msg.time)

    def _judge(self, symbol: str, before: datetime | None) -> None:
        """Judge the symbol's approvals stored before `before` (every one left when None)."""
        mine, i = self._pending[symbol], self._next[symbol]
        latest = self._latest.get(symbol)
        while i < len(mine) and (before is None or mine[i].at < before):
            if latest is None:
                self.without_tick.append(mine[i])
            else:
                self._compare(mine[i], latest)
            i += 1
        self._next[symbol] = i
        if i == len(mine):
            self._open.discard(symbol)

    def _compare(self, approval: Approval, tick: Tick) -> None:
        self.compared += 1
        problem = price_problem(approval, tick, self.collar_pct)
        if problem is not None:
            self.problems.append((approval, problem))

    def finish(self) -> None:
        """MARKET is read: judge what is left against each symbol's last tick."""
        for symbol in list(self._open):
            self._judge(symbol, before=None)

    def symbols_without_tick(self) -> list[str]:
        return sorted({a.symbol for a in self.without_tick if a.symbol is not None})

    def seed(self, symbol: str, tick: Tick | None) -> None:
        """`tick` is the last tick of `symbol` stored before the read began: the market of each of
        its approvals that met no tick in the read."""
        if tick is None:
            return
        left: list[Approval] = []
        for approval in self.without_tick:
            if approval.symbol == symbol:
                self._compare(approval, tick)
            else:
                left.append(approval)
        self.without_tick = left

    def settle(self, history: MarketHistory) -> int:
        """Name each approval without a tick before it, unless MARKET has lost the ticks of its
        time; return how many could not be compared."""
        unchecked = 0
        for approval in self.without_tick:
            if history.lost_before(approval.symbol or "", approval.at):
                unchecked += 1
            else:
                self.problems.append((approval, no_tick(approval)))
        self.without_tick = []
        self.problems.sort(key=lambda found: found[0].fact.seq)
        return unchecked


def _batches(nc: NATS, subject: str, **where: Any) -> AsyncGenerator[list[StoredMsg], None]:
    """MARKET's messages on `subject` (an async generator: close it to stop reading early)."""
    return cast(
        AsyncGenerator[list[StoredMsg], None],
        read_batches(nc, t.MARKET, subject=subject, batch=READ_BATCH, **where),
    )


async def read_market(
    nc: NATS,
    merge: MarketMerge,
    start_time: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Feed MARKET's ticks to `merge` in stream order from `start_time` (or the first), until it
    needs no more."""
    where = {"start_time": start_time} if start_time is not None else {}
    async with aclosing(_batches(nc, TICKS, **where)) as batches:
        async for batch in batches:
            for msg in batch:
                merge.add(msg)
            if on_batch is not None:
                on_batch(len(batch))
            if merge.done:
                return


async def last_tick_before(nc: NATS, symbol: str, before_seq: int) -> tuple[Tick | None, int]:
    """Return the last usable tick of `symbol` stored before MARKET #`before_seq` and how many
    messages were read for it: that symbol's ticks from its first (only for a symbol with no tick
    near its approvals)."""
    last: Tick | None = None
    read = 0
    async with aclosing(_batches(nc, s.of(s.MARKET_TICK, symbol))) as batches:
        async for batch in batches:
            for msg in batch:
                if msg.seq >= before_seq:
                    return last, read
                read += 1
                price = tick_price(symbol, msg.data)
                if price is not None:
                    last = Tick(msg.seq, price, stored_time(msg.time), msg.time)
    return last, read


async def _history(nc: NATS, info: StreamInfo | None, merge: MarketMerge) -> MarketHistory:
    if info is None or not merge.without_tick:
        return MarketHistory()
    state = info.state
    trimmed = state.first_seq > 1 or bool(state.num_deleted)
    if not trimmed:
        return MarketHistory()
    first = await read_one(nc, t.MARKET, state.first_seq) if state.messages else None
    cap = info.config.max_msgs_per_subject or -1
    counts: dict[str, int] = {}
    if cap > 0:
        counted = await nc.jetstream().stream_info(t.MARKET, subjects_filter=TICKS)
        held = counted.state.subjects or {}
        counts = {x: held.get(s.of(s.MARKET_TICK, x), 0) for x in merge.symbols_without_tick()}
    return MarketHistory(True, first.timestamp if first is not None else None, cap, counts)


async def judge_market(
    nc: NATS,
    approvals: Iterable[Approval],
    collar_pct: Decimal,
    report: AuditReport,
    on_batch: Callable[[int], None] | None = None,
    lookback_s: float = LOOKBACK_S,
) -> None:
    """Name every trusted approval whose price is off the market of its time (see the module)."""
    merge = MarketMerge((a for a in approvals if a.fact.trusted), collar_pct)
    first_at = merge.first_approval_at
    if first_at is None and not merge.problems:
        return  # nothing approved: MARKET is not read
    try:
        info: StreamInfo | None = await nc.jetstream().stream_info(t.MARKET)
    except NotFoundError:
        info = None
    if info is not None and info.state.messages and first_at is not None:
        await read_market(nc, merge, first_at - timedelta(seconds=lookback_s), on_batch)
    merge.finish()
    if info is not None and info.state.messages:
        before = merge.first_seq or info.state.last_seq + 1
        if before > info.state.first_seq:  # MARKET holds ticks from before the read
            for symbol in merge.symbols_without_tick():
                tick, read = await last_tick_before(nc, symbol, before)
                merge.read += read
                merge.seed(symbol, tick)
    unchecked = merge.settle(await _history(nc, info, merge))
    for approval, problem in merge.problems:
        fact = approval.fact
        report.error(Check.MARKET, problem, stream=fact.stream, seq=fact.seq,
                     intent_id=fact.intent_id)  # fmt: skip
    report.market["approvals compared"] = merge.compared
    report.market["collar"] = f"{collar_pct}%"
    report.market["ticks read"] = merge.read
    if unchecked:
        report.notes.append(
            f"{unchecked} approvals were stored before the oldest tick of their symbol that "
            f"{t.MARKET} still holds (its retention removed the older ones): not compared with "
            "the market"
        )
