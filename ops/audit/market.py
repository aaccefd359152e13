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

MARKET is read once, in stream order, with the subject filter `market.tick.*`, from its first
retained message and only until every approval is judged; nothing else is read for a symbol
nobody approved. Per symbol the merge keeps the latest tick and a cursor into that symbol's
approvals (sorted by stored time): memory is one tick per symbol whatever the history, and MARKET
itself is bounded by its retention (`[storage]` age and bytes, dropping the oldest; 100,000 ticks
per symbol). An approval stored before the retained ticks of its symbol cannot be compared: it is
counted in a note, not named.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from nats.aio.client import Client as NATS
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from pydantic import TypeAdapter, ValidationError

from bus.replay import StoredMsg, read_batches, stored_time
from contracts import subjects as s
from contracts import topology as t
from contracts.types import Price
from ops.audit.facts import Fact
from ops.audit.report import AuditReport, Check

HUNDRED = Decimal(100)
TICKS = s.every(s.MARKET_TICK)
"""The subjects read: `market.tick.*`."""
READ_BATCH = 1000
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
    """When its first retained tick was stored (None: it holds none)."""
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
        """Approvals with no tick of their symbol before them: named unless MARKET has lost the
        ticks of their time (`settle`)."""
        self.compared = 0
        self.ticks = 0
        """Usable ticks of an approved symbol read."""
        self.first_at: datetime | None = None
        self._pending: dict[str, list[Approval]] = defaultdict(list)
        self._next: dict[str, int] = {}
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

    def add(self, msg: StoredMsg) -> None:
        """Take the next message of MARKET (stream order)."""
        if self.first_at is None:
            self.first_at = stored_time(msg.time)
        symbol = s.last_token(msg.subject)
        if symbol not in self._open or msg.subject != s.of(s.MARKET_TICK, symbol):
            return
        at = stored_time(msg.time)
        self._judge(symbol, before=at)
        price = tick_price(symbol, msg.data)
        if price is not None:
            self._latest[symbol] = Tick(msg.seq, price, at, msg.time)
            self.ticks += 1

    def _judge(self, symbol: str, before: datetime | None) -> None:
        """Judge the symbol's approvals stored before `before` (every one left when None)."""
        mine, i = self._pending[symbol], self._next[symbol]
        latest = self._latest.get(symbol)
        while i < len(mine) and (before is None or mine[i].at < before):
            approval = mine[i]
            if latest is None:
                self.without_tick.append(approval)
            else:
                self.compared += 1
                problem = price_problem(approval, latest, self.collar_pct)
                if problem is not None:
                    self.problems.append((approval, problem))
            i += 1
        self._next[symbol] = i
        if i == len(mine):
            self._open.discard(symbol)

    def finish(self) -> None:
        """MARKET is read: judge what is left against each symbol's last tick."""
        for symbol in list(self._open):
            self._judge(symbol, before=None)

    def settle(self, history: MarketHistory) -> int:
        """Name each approval without a tick before it, unless MARKET has lost the ticks of its
        time; return how many could not be compared."""
        unchecked = 0
        for approval in self.without_tick:
            symbol = approval.symbol or ""
            if history.lost_before(symbol, approval.at):
                unchecked += 1
            else:
                self.problems.append((approval, no_tick(approval)))
        self.without_tick = []
        self.problems.sort(key=lambda found: found[0].fact.seq)
        return unchecked


async def _market_info(nc: NATS) -> StreamInfo | None:
    try:
        return await nc.jetstream().stream_info(t.MARKET)
    except NotFoundError:
        return None


async def _history(nc: NATS, info: StreamInfo | None, merge: MarketMerge) -> MarketHistory:
    if info is None:
        return MarketHistory()
    trimmed = info.state.first_seq > 1 or bool(info.state.num_deleted)
    cap = info.config.max_msgs_per_subject or -1
    counts: dict[str, int] = {}
    if trimmed and cap > 0 and merge.without_tick:
        counted = await nc.jetstream().stream_info(t.MARKET, subjects_filter=TICKS)
        held = counted.state.subjects or {}
        for approval in merge.without_tick:
            symbol = approval.symbol or ""
            counts[symbol] = held.get(s.of(s.MARKET_TICK, symbol), 0)
    return MarketHistory(trimmed, merge.first_at, cap, counts)


async def read_market(
    nc: NATS, merge: MarketMerge, on_batch: Callable[[int], None] | None = None
) -> None:
    """Feed MARKET's ticks to `merge` in stream order, until it needs no more."""
    # an async generator: closed on the early return, which ends its subscription at once
    batches = cast(
        AsyncGenerator[list[StoredMsg], None],
        read_batches(nc, t.MARKET, subject=TICKS, batch=READ_BATCH),
    )
    async with aclosing(batches):
        async for batch in batches:
            for msg in batch:
                merge.add(msg)
            if on_batch is not None:
                on_batch(len(batch))
            if merge.done:
                return


async def judge_market(
    nc: NATS,
    approvals: Iterable[Approval],
    collar_pct: Decimal,
    report: AuditReport,
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """Name every trusted approval whose price is off the market of its time (see the module)."""
    merge = MarketMerge((a for a in approvals if a.fact.trusted), collar_pct)
    if not merge.problems and merge.done:
        return  # nothing approved: MARKET is not read
    info = await _market_info(nc)
    if info is not None and info.state.messages and not merge.done:
        await read_market(nc, merge, on_batch)
    merge.finish()
    unchecked = merge.settle(await _history(nc, info, merge))
    for approval, problem in merge.problems:
        fact = approval.fact
        report.error(Check.MARKET, problem, stream=fact.stream, seq=fact.seq,
                     intent_id=fact.intent_id)  # fmt: skip
    report.market["approvals compared"] = merge.compared
    report.market["collar"] = f"{collar_pct}%"
    if unchecked:
        report.notes.append(
            f"{unchecked} approvals were stored before the oldest tick of their symbol that "
            f"{t.MARKET} still holds (its retention removed the older ones): not compared with "
            "the market"
        )
