"""The consumer runtime every agent uses: fetch a batch, validate, handle, publish, then ack.

Settlement of each message (exactly one of ack, term or nak per delivery):
- handled: its outputs are published (signed, with `Nats-Msg-Id`); ack after their pub-acks;
- invalid payload or `Rejected`: a dead letter on `dlq.<agent>`, then term;
- `Transient` or any other exception, or an unacknowledged publish: nak with increasing delay;
- deliveries exhausted: the server's advisory reaches `run_exhausted`, which dead-letters it.

A handler answers a batch at once (a sequence of outcomes, in delivery order), or as its
outcomes become ready (an async iterator of `(index, outcome)` groups): each delivery is then
settled as soon as its own outcome is there, and whatever is ready together is published
together. A delivery the handler gives no outcome for is nak'ed like a failure.

`Pacing` says how much one consumer works on at once. By default one batch: fetch, handle,
settle, fetch again. With `max_batches > 1` the next batch is fetched while earlier ones are
still being handled, and `capacity` (flow control) bounds the deliveries in hand: no fetch while
that many are unsettled, and no pull credit beyond the difference. With `heartbeat`, every
delivery in hand gets an in-progress ack (`+WPI`) every ack_wait/3 until its settlement starts
(or it has been held `max_hold_s`), so the server does not redeliver what is still being worked
on. A batch whose settlement fails part-way (the connection dropped) leaves its unsettled
deliveries to the server's ack wait: they are redelivered, never settled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bus.errors import Rejected
from bus.handling import (
    BatchHandler,
    Decoder,
    Delivery,
    Outcome,
    Pacing,
    Ready,
    RuntimeStats,
    check_producer,
    dead_letter_of,
    provenance,
)
from bus.metrics import DEAD_LETTERED, FAILED, HANDLER_SECONDS, PROCESSED
from bus.nats_private import client_of
from bus.publisher import Emit, Publisher
from bus.pull import PullConsumer
from bus.signing import Verifier
from contracts import Identity, InvalidMessage
from contracts.topology import ConsumerSpec

log = logging.getLogger("tradeops.runtime")

T = TypeVar("T")


class ConsumerRuntime(Generic[T]):
    """Runs one bound durable pull consumer for one agent."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        decode: Decoder[T],
        handler: BatchHandler[T],
        publisher: Publisher,
        *,
        batch_size: int = 500,
        fetch_timeout_s: float = 1.0,
        stats: RuntimeStats | None = None,
        verifier: Verifier | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.js = js
        self.verifier = verifier
        """When set, an input is acted on only if its signer may publish its subject."""
        self.spec = spec
        self.agent: Identity = spec.owner
        self.decode = decode
        self.handler = handler
        self.publisher = publisher
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.stats = stats or RuntimeStats()
        self.pacing = pacing or Pacing()
        if self.pacing.max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, not {self.pacing.max_batches}")
        self._stopping = asyncio.Event()
        self._changed = asyncio.Event()
        """Set when deliveries leave the hand (or on stop): the fetch loop re-checks its room."""
        self._held: dict[int, tuple[Msg, float]] = {}
        """Deliveries in hand whose settlement has not started, by id: (message, taken at)."""
        self._batches: set[asyncio.Task[None]] = set()
        self.nc = client_of(js)
        self._pull: PullConsumer | None = None

    @property
    def bound(self) -> bool:
        """True once the pull subscription is bound to the durable consumer."""
        return self._pull is not None

    @property
    def in_hand(self) -> int:
        """Deliveries fetched whose settlement has not started yet."""
        return len(self._held)

    def stop(self) -> None:
        """Finish the batches in hand, then return from `run` (graceful drain)."""
        self._stopping.set()
        self._changed.set()

    async def _bind(self) -> PullConsumer:
        # Binding makes no API call: the agent needs no consumer-create permission.
        if self._pull is None:
            spec = self.spec
            pull = PullConsumer(
                self.nc, spec.stream, spec.durable, self.batch_size, group=spec.pinned_group
            )
            await pull.bind()
            self._pull = pull
        return self._pull

    async def _rebind(self) -> None:
        if self._pull is not None:
            pull, self._pull = self._pull, None
            try:
                await pull.unbind()
            except Exception:  # the old subscription may already be gone with the connection
                log.debug("unsubscribe of stale pull subscription failed", exc_info=True)

    async def run(self) -> None:
        """Fetch and process batches until `stop()`; survive server restarts."""
        failures = 0
        beating = asyncio.create_task(self._heartbeat()) if self.pacing.heartbeat else None
        try:
            while not self._stopping.is_set():
                room = await self._room()
                if room <= 0:
                    continue
                try:
                    pull = await self._bind()
                    pull.batch = self._pull_batch(room)
                    msgs = await pull.next_batch(self.fetch_timeout_s)
                    failures = 0
                except (ConnectionClosedError, OSError, ValueError) as exc:
                    failures += 1
                    self.stats.last_error = f"fetch: {exc!r}"
                    log.warning("%s fetch failed (%r); rebinding", self.spec.durable, exc)
                    await self._rebind()
                    await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                    continue
                if not msgs:
                    continue
                if self.pacing.max_batches == 1:
                    await self.process(msgs)
                else:
                    self._start_batch(msgs)
            if self._batches:
                await asyncio.wait(set(self._batches))
        finally:
            for task in (*self._batches, *([beating] if beating else [])):
                task.cancel()
            if beating is not None:  # its cancellation, not ours, is what gather returns
                await asyncio.gather(beating, return_exceptions=True)
        await self._rebind()

    async def _room(self) -> int:
        """Wait until another batch may be fetched; return how many deliveries it may hold."""
        pacing = self.pacing
        while not self._stopping.is_set():
            if len(self._batches) < pacing.max_batches:
                if pacing.capacity is None:
                    return self.batch_size
                room = min(pacing.capacity() - len(self._held), self.batch_size)
                if room > 0:
                    return room
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
        return 0

    def _pull_batch(self, room: int) -> int:
        """The pull's batch for `room` more deliveries.

        The pull keeps up to twice its batch requested from the server, and what the server
        delivers waits for the ack wait whether taken or not: a paced consumer asks for half its
        room, so what it is sent fits in it (give or take requests made before the room
        shrank, which expire within seconds)."""
        if self.pacing.capacity is None:
            return room
        return max(1, room // 2)

    def _start_batch(self, msgs: Sequence[Msg]) -> None:
        self._hold(msgs)  # now, not when the task starts: the next fetch counts them
        task = asyncio.create_task(self._process_apart(msgs))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _process_apart(self, msgs: Sequence[Msg]) -> None:
        """Process a batch beside others; a failure leaves its unsettled ones to the ack wait."""
        try:
            await self.process(msgs)
        except Exception as exc:
            self.stats.last_error = f"settle: {exc!r}"
            log.warning("%s: settling a batch failed (%r)", self.spec.durable, exc)
            self._release(msgs)
        finally:
            self._changed.set()

    def _hold(self, msgs: Sequence[Msg]) -> None:
        now = time.monotonic()
        for msg in msgs:
            self._held.setdefault(id(msg), (msg, now))

    def _release(self, msgs: Sequence[Msg]) -> None:
        """Settlement starts: no more heartbeats, and room for the next fetch."""
        for msg in msgs:
            self._held.pop(id(msg), None)
        self._changed.set()

    async def _heartbeat(self) -> None:
        """Tell the server every ack_wait/3 that each delivery in hand is still in progress."""
        every_s = self.spec.ack_wait_s / 3
        limit_s = self.pacing.max_hold_s
        while True:
            await asyncio.sleep(every_s)
            now = time.monotonic()
            for key, (msg, since) in list(self._held.items()):
                if key not in self._held or (limit_s is not None and now - since > limit_s):
                    continue  # settling meanwhile, or held too long: let the server redeliver
                try:
                    await msg.in_progress()
                except Exception as exc:  # the connection is gone: the server redelivers anyway
                    log.debug("%s: in-progress ack failed: %r", self.spec.durable, exc)
                    break
                self.stats.in_progress_sent += 1

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Validate, handle, publish and settle one fetched batch."""
        started = time.perf_counter()
        self._hold(msgs)
        valid: list[Delivery[T]] = []
        emits: list[tuple[Msg, Sequence[Emit], bool]] = []  # (msg, outputs, is_dead_letter)
        for msg in msgs:
            meta = msg.metadata
            try:
                signer = provenance(self.verifier, msg)
                value = self.decode(msg)
                check_producer(value, signer)
            except (InvalidMessage, Rejected) as exc:
                emits.append((msg, [self._dead_letter(msg, exc)], True))
                continue
            valid.append(
                Delivery(value, msg.subject, meta.sequence.stream, meta.num_delivered, msg)
            )
        answer: Awaitable[Sequence[Outcome]] | AsyncIterator[Ready] | None = None
        outcomes: Sequence[Outcome] = []
        if valid:
            try:
                answer = self.handler(valid)
                if not isinstance(answer, AsyncIterator):
                    outcomes = await answer
            except Exception as exc:  # the whole batch failed: retry all of it
                answer, outcomes = None, [exc] * len(valid)
        if isinstance(answer, AsyncIterator):
            await self._publish_and_settle(emits, [])
            await self._settle_as_ready(valid, answer)
        else:
            retry = self._sort(valid, enumerate(outcomes), emits)
            await self._publish_and_settle(emits, retry)
        HANDLER_SECONDS.labels(agent=self.agent).observe(time.perf_counter() - started)

    def _sort(
        self,
        valid: Sequence[Delivery[T]],
        ready: Iterable[tuple[int, Outcome]],
        emits: list[tuple[Msg, Sequence[Emit], bool]],
    ) -> list[tuple[Msg, BaseException]]:
        """Add each outcome to `emits` (outputs, dead letters); return the deliveries to retry."""
        retry: list[tuple[Msg, BaseException]] = []
        for index, outcome in ready:
            msg = valid[index].msg
            if isinstance(outcome, Rejected):
                emits.append((msg, [self._dead_letter(msg, outcome)], True))
            elif isinstance(outcome, BaseException):
                retry.append((msg, outcome))
            else:
                emits.append((msg, outcome, False))
        return retry

    async def _settle_as_ready(
        self, valid: Sequence[Delivery[T]], answers: AsyncIterator[Ready]
    ) -> None:
        """Settle each delivery as its outcome arrives; what is ready together goes together."""
        queue: asyncio.Queue[Ready | BaseException | None] = asyncio.Queue()

        async def feed() -> None:
            try:
                async for ready in answers:
                    queue.put_nowait(ready)
            except Exception as exc:
                queue.put_nowait(exc)
            else:
                queue.put_nowait(None)

        feeder = asyncio.create_task(feed())
        unsettled = set(range(len(valid)))
        failure: BaseException | None = None
        try:
            ended = False
            while not ended:
                items = [await queue.get()]
                while not queue.empty():
                    items.append(queue.get_nowait())
                ready: list[tuple[int, Outcome]] = []
                for item in items:
                    if item is None:
                        ended = True
                    elif isinstance(item, BaseException):
                        ended, failure = True, item
                    else:
                        ready.extend(pair for pair in item if pair[0] in unsettled)
                        unsettled.difference_update(index for index, _ in item)
                emits: list[tuple[Msg, Sequence[Emit], bool]] = []
                retry = self._sort(valid, ready, emits)
                await self._publish_and_settle(emits, retry)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        missing = failure or RuntimeError("the handler gave no outcome for this delivery")
        await self._publish_and_settle([], [(valid[i].msg, missing) for i in sorted(unsettled)])

    async def _publish_and_settle(
        self,
        emits: list[tuple[Msg, Sequence[Emit], bool]],
        retry: list[tuple[Msg, BaseException]],
    ) -> None:
        self._release([msg for msg, _outputs, _dead in emits])
        self._release([msg for msg, _exc in retry])
        futures: list[asyncio.Future[PubAck]] = []
        spans: list[tuple[int, int]] = []
        for _msg, outputs, _dead in emits:
            start = len(futures)
            for out in outputs:
                futures.append(await self.publisher.start(out))
            spans.append((start, len(futures)))
        results = await self.publisher.settle(futures)
        acked = 0
        for (msg, _outputs, dead), (lo, hi) in zip(emits, spans, strict=True):
            if all(results[lo:hi]):
                if dead:
                    await msg.term()
                    self.stats.dead_lettered += 1
                else:
                    await msg.ack()
                    acked += 1
            else:
                retry.append((msg, TimeoutError("outputs not acknowledged by the stream")))
        if acked:
            self.stats.processed += acked
            PROCESSED.labels(agent=self.agent, subject=self.spec.filter_subject).inc(acked)
        for msg, exc in retry:
            await self._retry(msg, exc)

    async def _retry(self, msg: Msg, exc: BaseException) -> None:
        attempt = msg.metadata.num_delivered
        delays = self.spec.backoff_s
        delay = delays[min(attempt, len(delays)) - 1]
        self.stats.failed += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        FAILED.labels(agent=self.agent, subject=self.spec.filter_subject).inc()
        log.warning(
            "%s: delivery %d of %s failed (%s); retrying in %.2fs",
            self.agent,
            attempt,
            msg.subject,
            self.stats.last_error,
            delay,
        )
        await msg.nak(delay=delay)

    def _dead_letter(self, msg: Msg, exc: InvalidMessage | Rejected) -> Emit:
        DEAD_LETTERED.labels(agent=self.agent, reason=exc.code).inc()
        return dead_letter_of(self.agent, msg, exc)
