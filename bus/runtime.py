"""The consumer runtime every agent uses: fetch a batch, validate, handle, publish, then ack.

Settlement of each message:
- handled: its outputs are published (signed, with `Nats-Msg-Id`); ack after their pub-acks;
- invalid payload or `Rejected`: a dead letter on `dlq.<agent>`, then term;
- `Transient` or any other exception, or an unacknowledged publish: nak with increasing delay;
- deliveries exhausted: the server's advisory reaches `run_exhausted`, which dead-letters it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bus.deadletter import dead_letter
from bus.errors import Rejected
from bus.metrics import DEAD_LETTERED, FAILED, HANDLER_SECONDS, PROCESSED
from bus.nats_private import client_of
from bus.publisher import Emit, Publisher
from bus.pull import PullConsumer, stored_headers
from bus.signing import SignatureStatus, Verifier
from contracts import Identity, InvalidMessage
from contracts.kinds import owners_of, unsigned_allowed
from contracts.topology import ConsumerSpec

log = logging.getLogger("tradeops.runtime")

T = TypeVar("T")


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """One validated message and where it came from."""

    value: T
    subject: str
    stream_seq: int
    num_delivered: int
    msg: Msg


def _check_producer(value: object, signer: str | None) -> None:
    """An event naming another producer than its signer is not believed (ops repairs aside)."""
    producer = getattr(value, "producer", None)
    if signer in (None, Identity.OPS) or producer is None or str(producer) == signer:
        return
    raise Rejected("provenance", f"producer field says {producer}, signed by {signer}")


Outcome = Sequence[Emit] | BaseException
"""A handler's answer for one delivery: the events to publish, or the error it hit."""
BatchHandler = Callable[[Sequence[Delivery[T]]], Awaitable[Sequence[Outcome]]]
Decoder = Callable[[Msg], T]


def one_by_one(handle: Callable[[Delivery[T]], Awaitable[Sequence[Emit]]]) -> BatchHandler[T]:
    """Adapt a per-message handler into a batch handler that isolates each message's error."""

    async def batch(items: Sequence[Delivery[T]]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.append(await handle(item))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    return batch


@dataclass
class RuntimeStats:
    """Counters the agent's /status endpoint reports."""

    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    last_error: str | None = None


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
        self._stopping = asyncio.Event()
        self.nc = client_of(js)
        self._pull: PullConsumer | None = None

    @property
    def bound(self) -> bool:
        """True once the pull subscription is bound to the durable consumer."""
        return self._pull is not None

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run` (graceful drain)."""
        self._stopping.set()

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
        while not self._stopping.is_set():
            try:
                pull = await self._bind()
                msgs = await pull.next_batch(self.fetch_timeout_s)
                failures = 0
            except (ConnectionClosedError, OSError, ValueError) as exc:
                failures += 1
                self.stats.last_error = f"fetch: {exc!r}"
                log.warning("%s fetch failed (%r); rebinding", self.spec.durable, exc)
                await self._rebind()
                await asyncio.sleep(min(0.1 * 2**failures, 2.0))
                continue
            if msgs:
                await self.process(msgs)
        await self._rebind()

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Validate, handle, publish and settle one fetched batch."""
        started = time.perf_counter()
        valid: list[Delivery[T]] = []
        emits: list[tuple[Msg, Sequence[Emit], bool]] = []  # (msg, outputs, is_dead_letter)
        retry: list[tuple[Msg, BaseException]] = []
        for msg in msgs:
            meta = msg.metadata
            try:
                signer = self._provenance(msg)
                value = self.decode(msg)
                _check_producer(value, signer)
            except (InvalidMessage, Rejected) as exc:
                emits.append((msg, [self._dead_letter(msg, exc)], True))
                continue
            valid.append(
                Delivery(value, msg.subject, meta.sequence.stream, meta.num_delivered, msg)
            )
        outcomes: Sequence[Outcome] = []
        if valid:
            try:
                outcomes = await self.handler(valid)
            except Exception as exc:  # the whole batch failed: retry all of it
                outcomes = [exc] * len(valid)
        for item, outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                emits.append((item.msg, [self._dead_letter(item.msg, outcome)], True))
            elif isinstance(outcome, BaseException):
                retry.append((item.msg, outcome))
            else:
                emits.append((item.msg, outcome, False))
        await self._publish_and_settle(emits, retry)
        HANDLER_SECONDS.labels(agent=self.agent).observe(time.perf_counter() - started)

    async def _publish_and_settle(
        self,
        emits: list[tuple[Msg, Sequence[Emit], bool]],
        retry: list[tuple[Msg, BaseException]],
    ) -> None:
        futures: list[asyncio.Future[PubAck]] = []
        spans: list[tuple[int, int]] = []
        for _msg, outputs, _dead in emits:
            start = len(futures)
            for out in outputs:
                futures.append(await self.publisher.start(out))
            spans.append((start, len(futures)))
        results = await self.publisher.settle(futures)
        acked: dict[str, int] = {}
        for (msg, _outputs, dead), (lo, hi) in zip(emits, spans, strict=True):
            if all(results[lo:hi]):
                if dead:
                    await msg.term()
                    self.stats.dead_lettered += 1
                else:
                    await msg.ack()
                    acked[msg.subject] = acked.get(msg.subject, 0) + 1
            else:
                retry.append((msg, TimeoutError("outputs not acknowledged by the stream")))
        for subject, count in acked.items():
            self.stats.processed += count
            PROCESSED.labels(agent=self.agent, subject=subject).inc(count)
        for msg, exc in retry:
            await self._retry(msg, exc)

    async def _retry(self, msg: Msg, exc: BaseException) -> None:
        attempt = msg.metadata.num_delivered
        delays = self.spec.backoff_s
        delay = delays[min(attempt, len(delays)) - 1]
        self.stats.failed += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        FAILED.labels(agent=self.agent, subject=msg.subject).inc()
        log.warning(
            "%s: delivery %d of %s failed (%s); retrying in %.2fs",
            self.agent,
            attempt,
            msg.subject,
            self.stats.last_error,
            delay,
        )
        await msg.nak(delay=delay)

    def _provenance(self, msg: Msg) -> str | None:
        """The input's verified signer; `Rejected("provenance")` when it may not have sent it.

        Only an identity that publishes a subject (or ops, which repairs dead letters) is
        believed on it: a compromised agent's key signs only its own subjects' events."""
        if self.verifier is None or unsigned_allowed(msg.subject):
            return None
        status, signer = self.verifier.check(msg.subject, msg.data, msg.headers)
        if status is not SignatureStatus.VALID:
            raise Rejected("provenance", f"signature {status} (signer {signer!r}) on {msg.subject}")
        if signer != Identity.OPS and signer not in owners_of(msg.subject):
            named = ", ".join(sorted(owners_of(msg.subject))) or "nobody"
            raise Rejected("provenance", f"signed by {signer}, but {msg.subject} is {named}'s")
        return signer

    def _dead_letter(self, msg: Msg, exc: InvalidMessage | Rejected) -> Emit:
        reason = exc.code
        DEAD_LETTERED.labels(agent=self.agent, reason=reason).inc()
        meta = msg.metadata
        return dead_letter(
            agent=self.agent,
            reason=reason,
            error=str(exc),
            subject=msg.subject,
            headers=stored_headers(msg.headers),
            data=msg.data,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            delivery_count=meta.num_delivered,
        )
