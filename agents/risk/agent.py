"""The risk gate: `intent.analyzed.<SYM>` in, `risk.approved.<SYM>` or `risk.rejected.<SYM>` out.

- Consumer `risk` (INTENTS, `intent.analyzed.*`): each intent is decided by `checks.evaluate`;
  an approval is pending in the book before the next intent of the batch is checked, so a burst
  cannot jointly pass a limit. A redelivered intent gets the decision it already had.
- Consumer `risk-orders` (ORDERS, `order.>`): a fill moves the intent from pending to the
  position and books its P&L; an executor's rejection releases the pending exposure.
- Prices: a core subscription on `market.tick.*`, plus a direct get of each instrument's last
  tick at start and after every reconnect.
- Start-up: before the consumers run, the book is rebuilt from the RISK stream (`risk.>`: the
  approvals, and which intents are already decided) and the ORDERS stream (`order.>`: outcomes).
  Applying is idempotent per intent, so the fills that `risk-orders` delivers again after the
  replay are not booked twice. If a stream cannot be read the gate does not start: without its
  pending exposure it would approve past the limits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from agents.base import Agent, Worker
from agents.risk.calendar import Clock, MarketHours
from agents.risk.checks import Verdict, evaluate, explain
from agents.risk.exposure import Exposure
from agents.risk.metrics import DECISIONS, REJECTIONS
from agents.settings import Settings
from bus import Delivery, Emit, Outcome, Rejected
from bus.replay import read_stream
from contracts import (
    Identity,
    IntentAccepted,
    IntentAnalyzed,
    InvalidMessage,
    MarketTick,
    OrderFilled,
    OrderRejected,
    RiskApproved,
    RiskRejected,
    parse,
    utc_now,
)
from contracts import subjects as s
from contracts import topology as t

log = logging.getLogger("tradeops.risk")


REPLAY_TIMEOUT_S = 3.0
"""How long one batch of the replay may take before the rebuild gives up (a denial is a
timeout)."""
_WIRE_STEP = Decimal("1e-10")


class RebuildFailed(RuntimeError):
    """The book could not be rebuilt from the streams at start-up."""


def _decode_analyzed(msg: Msg) -> IntentAnalyzed:
    return parse(IntentAnalyzed, msg.data)


def _decode_outcome(msg: Msg) -> OrderFilled | OrderRejected:
    return _outcome_from(msg.subject, msg.data)


def _outcome_from(subject: str, data: bytes) -> OrderFilled | OrderRejected:
    if subject.startswith(f"{s.ORDER_FILLED}."):
        return parse(OrderFilled, data)
    if subject.startswith(f"{s.ORDER_REJECTED}."):
        return parse(OrderRejected, data)
    raise Rejected(
        "unexpected_subject", f"expected order.filled.* or order.rejected.*, got {subject}"
    )


def _on_wire(amount: Decimal) -> Decimal:
    """Round `amount` to the wire's 10 decimal places only when it has more."""
    exponent = amount.as_tuple().exponent
    return amount.quantize(_WIRE_STEP) if isinstance(exponent, int) and exponent < -10 else amount


class RiskGate(Agent):
    """Deterministic pre-trade checks with exposure that counts pending approvals."""

    identity = Identity.RISK

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        market_hours: MarketHours | None = None,
    ) -> None:
        super().__init__(settings)
        self.clock = clock
        """Now, for price staleness (rate windows use the intents' own timestamps)."""
        self.market_hours = market_hours or MarketHours()
        self.exposure = Exposure(
            sum((a.starting_cash_usd for a in settings.accounts), Decimal(0)),
            remembered_outcomes=settings.risk.remembered_decisions,
        )
        self._instruments = {i.symbol: i for i in settings.instruments}
        self._decided: OrderedDict[uuid.UUID, Emit | None] = OrderedDict()
        """Intent -> the decision published by this process, or None when only its id is kept
        (read back from RISK, or older than the newest `remembered_events`)."""
        self._whole: deque[uuid.UUID] = deque()
        """Intents whose decision is kept whole, oldest first."""
        self._ticks: Subscription | None = None

    def workers(self) -> Sequence[Worker]:
        return [
            Worker(t.consumer("risk"), _decode_analyzed, self.handle_intents),
            Worker(t.consumer("risk-orders"), _decode_outcome, self.handle_outcomes),
        ]

    async def open(self) -> None:
        # About 0.1 s per venue, once, before any consumer runs: not worth a thread.
        self.market_hours.preload({i.calendar for i in self.settings.instruments})
        self._ticks = await self.nc.subscribe(s.every(s.MARKET_TICK), cb=self._on_tick)
        await self._bootstrap_prices()
        await self._rebuild()

    async def close(self) -> None:
        if self._ticks is not None:
            await self._ticks.unsubscribe()
        # Workaround until bus/runtime.py unsubscribes on exit: a stopped runtime's pull
        # subscription still holds its expired pull's status message, and `nc.drain()` then
        # waits out its whole timeout (about 20 s) for it.
        for runtime in self._runtimes:
            await runtime._rebind()

    async def on_reconnect(self) -> None:
        await self._bootstrap_prices()

    # -- handlers ------------------------------------------------------------------------------

    async def handle_intents(self, items: Sequence[Delivery[IntentAnalyzed]]) -> list[Outcome]:
        submitted = await asyncio.gather(
            *(self._accepted_as_analyzed(item.value) for item in items), return_exceptions=True
        )
        outcomes: list[Outcome] = []
        for item, problem in zip(items, submitted, strict=True):
            if problem is not None:
                outcomes.append(problem)
                continue
            try:
                outcomes.append(self.decide(item.value, item.subject))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _accepted_as_analyzed(self, event: IntentAnalyzed) -> BaseException | None:
        """None when the ingestor accepted exactly this intent (its signed event is stored);
        else why not: an analysis, however well signed, decides nothing about an intent nobody
        submitted, or about other terms than were submitted."""
        intent = event.intent
        if intent.intent_id in self._decided:
            return None  # a redelivery: answered from memory
        subject = s.intent_event(s.INTENT_ACCEPTED, intent.symbol, intent.intent_id)
        try:
            raw = await self.js.get_msg(t.INTENTS, subject=subject, direct=True)
        except NotFoundError:
            return Rejected("provenance", f"no accepted intent {intent.intent_id} on {subject}")
        except Exception as exc:  # the store did not answer: retry later
            return exc
        # Only the ingestor (and ops) may publish on intent.accepted.*: the server's permissions
        # say who stored it, so its signature is not checked again here (about 0.2 ms of CPU).
        accepted = IntentAccepted.model_validate_json(raw.data or b"{}")
        if accepted.intent != intent:
            return Rejected("provenance", f"intent {intent.intent_id} differs from its acceptance")
        return None

    async def handle_outcomes(
        self, items: Sequence[Delivery[OrderFilled | OrderRejected]]
    ) -> list[Outcome]:
        for item in items:
            self._apply_outcome(item.value)
        return [[] for _ in items]

    def decide(self, event: IntentAnalyzed, subject: str) -> list[Emit]:
        """Return the decision on one intent (the earlier one if it was decided before)."""
        intent = event.intent
        if not s.names_intent(subject, intent.symbol, intent.intent_id):
            raise Rejected(
                "subject_mismatch",
                f"intent {intent.intent_id} for {intent.symbol} published on {subject}",
            )
        if intent.intent_id in self._decided:
            earlier = self._decided[intent.intent_id]
            return [] if earlier is None else [earlier]
        instrument = self._instruments.get(intent.symbol)
        verdict = evaluate(
            event,
            self.exposure,
            trading_state=self.trading_state,
            limits=self.settings.limits,
            instrument=instrument,
            now=self.clock(),
            market_open=instrument is None or self.market_hours.is_open(instrument.calendar),
        )
        emit = self._emit(event, verdict)
        self._remember(intent.intent_id, emit)
        DECISIONS.labels(decision="approved" if verdict.approved else "rejected").inc()
        for reason in verdict.reasons:
            REJECTIONS.labels(reason=str(reason)).inc()
        return [emit]

    def _emit(self, event: IntentAnalyzed, verdict: Verdict) -> Emit:
        intent, ctx = event.intent, verdict.ctx
        if not verdict.approved:
            rejected = RiskRejected.derive(
                intent_id=intent.intent_id,
                producer=self.identity,
                causation_id=event.event_id,
                intent=intent,
                reasons=verdict.reasons,
                detail=explain(verdict),
            )
            return Emit(s.intent_event(s.RISK_REJECTED, intent.symbol, intent.intent_id), rejected)
        notional = ctx.notional_usd
        assert ctx.reference_price is not None and notional is not None  # else stale_price
        approved = RiskApproved.derive(
            intent_id=intent.intent_id,
            producer=self.identity,
            causation_id=event.event_id,
            intent=intent,
            reference_price=ctx.reference_price,
            notional_usd=_on_wire(notional),
        )
        return Emit(s.intent_event(s.RISK_APPROVED, intent.symbol, intent.intent_id), approved)

    def _remember(self, intent_id: uuid.UUID, emit: Emit | None) -> None:
        """Keep the decision: whole for the newest ones, by id for older ones, none past the cap
        (`[risk]`): the gate's memory is bounded by configuration, not by the volume traded."""
        memory = self.settings.risk
        self._decided[intent_id] = emit
        if emit is not None:
            self._whole.append(intent_id)
            if len(self._whole) > memory.remembered_events:
                old = self._whole.popleft()
                if self._decided.get(old) is not None:
                    self._decided[old] = None
        while len(self._decided) > memory.remembered_decisions:
            self._decided.popitem(last=False)

    def _apply_outcome(self, event: OrderFilled | OrderRejected) -> None:
        if isinstance(event, OrderFilled):
            self.exposure.apply_fill(event)
        else:
            self.exposure.apply_order_rejected(event)

    # -- prices --------------------------------------------------------------------------------

    async def _on_tick(self, msg: Msg) -> None:
        self._apply_tick(msg.subject, msg.data)

    def _apply_tick(self, subject: str, data: bytes) -> None:
        try:
            tick = parse(MarketTick, data)
        except InvalidMessage as exc:
            log.warning("ignored malformed tick on %s: %s", subject, exc)
            return
        if s.last_token(subject) != tick.symbol:
            log.warning("ignored tick for %s published on %s", tick.symbol, subject)
            return
        self.exposure.mark(tick.symbol, tick.price, tick.observed_at)

    async def _bootstrap_prices(self) -> None:
        for symbol in self._instruments:
            subject = s.of(s.MARKET_TICK, symbol)
            try:
                raw = await self.js.get_msg(t.MARKET, subject=subject, direct=True)
            except NotFoundError:
                continue
            self._apply_tick(subject, raw.data or b"")

    # -- rebuild after a restart ---------------------------------------------------------------

    async def _rebuild(self) -> None:
        decided = outcomes = 0
        async for subject, data in self._stored(t.RISK, ">"):
            try:
                if subject.startswith(f"{s.RISK_APPROVED}."):
                    approved = parse(RiskApproved, data)
                    self.exposure.apply_approved(approved)
                    intent_id = approved.intent_id
                else:
                    intent_id = parse(RiskRejected, data).intent_id
            except InvalidMessage as exc:
                log.error("rebuild: skipped malformed %s: %s", subject, exc)
                continue
            self._remember(intent_id, None)
            decided += 1
        async for subject, data in self._stored(t.ORDERS, t.consumer("risk-orders").filter_subject):
            try:
                self._apply_outcome(_outcome_from(subject, data))
            except (InvalidMessage, Rejected) as exc:
                log.error("rebuild: skipped %s: %s", subject, exc)
                continue
            outcomes += 1
        log.info(
            "risk book rebuilt from %d decisions and %d outcomes: %d pending",
            decided,
            outcomes,
            len(self.exposure.pending),
        )

    async def _stored(self, stream: str, subject: str) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (subject, data) of every stored message of `stream` matching `subject`."""
        try:
            async for msg in read_stream(
                self.nc, stream, subject=subject, timeout_s=REPLAY_TIMEOUT_S
            ):
                yield msg.subject, msg.data
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise RebuildFailed(
                f"cannot read stream {stream} ({subject}) by direct get as {self.identity}: "
                f"no answer in {REPLAY_TIMEOUT_S:g} s. The identity needs "
                f"$JS.API.DIRECT.GET.{stream} (contracts/topology.py DIRECT_READS); the gate "
                "will not start without its pending exposure."
            ) from exc
