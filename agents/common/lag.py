"""Consumer lag as Prometheus gauges, read from the server's `CONSUMER.INFO`.

- `tradeops_consumer_lag_messages{agent,consumer}`: messages of the stream that match the
  consumer's filter and are not delivered yet (`num_pending`).
- `tradeops_consumer_ack_pending_messages{agent,consumer}`: delivered, not acknowledged yet
  (`num_ack_pending`).

Each agent identity may ask `$JS.API.CONSUMER.INFO.<stream>.<durable>` for its own consumers
only. Replicas of one agent share its durable consumer and so report the same figures: aggregate
with `max by (consumer)`, never `sum`. When a consumer's info cannot be read (disconnected,
denied, deleted), its series are removed rather than left at a stale value, and the failure is
logged once until the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client import Gauge

from contracts import Identity
from contracts import topology as t

log = logging.getLogger("tradeops.lag")

LAG = Gauge(
    "tradeops_consumer_lag_messages",
    "Messages matching the consumer's filter that are not delivered yet (num_pending).",
    ["agent", "consumer"],
)
ACK_PENDING = Gauge(
    "tradeops_consumer_ack_pending_messages",
    "Messages delivered to the consumer and not acknowledged yet (num_ack_pending).",
    ["agent", "consumer"],
)

INFO_TIMEOUT_S = 2.0
"""How long one CONSUMER.INFO request may take (a permission denial surfaces as a timeout)."""


class ConsumerInfoSource(Protocol):
    """The part of a JetStream context the tracker uses (`nats.js.JetStreamContext`)."""

    async def consumer_info(  # nats-py's signature, timeout included
        self,
        stream: str,
        consumer: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any: ...


class LagSampler:
    """Reads the consumers' info once per `sample()` and publishes it in the gauges."""

    def __init__(
        self, js: ConsumerInfoSource, specs: Iterable[t.ConsumerSpec], agent: Identity | str
    ) -> None:
        self.js = js
        self.specs = tuple(dict.fromkeys(specs))  # one read per consumer, in order
        self.agent = str(agent)
        self._failing: set[str] = set()

    async def sample(self) -> list[str]:
        """Update the gauges from every consumer; return the durables that could not be read."""
        results = await asyncio.gather(
            *(self._read(spec) for spec in self.specs), return_exceptions=True
        )
        failed: list[str] = []
        for spec, result in zip(self.specs, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed.append(spec.durable)
                self._forget(spec, result)
            else:
                self._publish(spec, *result)
        return failed

    async def _read(self, spec: t.ConsumerSpec) -> tuple[int, int]:
        info = await self.js.consumer_info(spec.stream, spec.durable, timeout=INFO_TIMEOUT_S)
        return int(info.num_pending or 0), int(info.num_ack_pending or 0)

    def _publish(self, spec: t.ConsumerSpec, pending: int, ack_pending: int) -> None:
        LAG.labels(agent=self.agent, consumer=spec.durable).set(pending)
        ACK_PENDING.labels(agent=self.agent, consumer=spec.durable).set(ack_pending)
        if spec.durable in self._failing:
            self._failing.discard(spec.durable)
            log.info("%s: consumer info of %s readable again", self.agent, spec.durable)

    def _forget(self, spec: t.ConsumerSpec, exc: BaseException) -> None:
        for gauge in (LAG, ACK_PENDING):
            with contextlib.suppress(KeyError):
                gauge.remove(self.agent, spec.durable)
        if spec.durable not in self._failing:
            self._failing.add(spec.durable)
            log.warning(
                "%s: cannot read consumer info of %s.%s (%s: %s); its lag is not reported "
                "until it can be read (check the connection and the identity's "
                "$JS.API.CONSUMER.INFO permission)",
                self.agent,
                spec.stream,
                spec.durable,
                type(exc).__name__,
                exc,
            )


async def track_lag(
    js: ConsumerInfoSource,
    specs: Iterable[t.ConsumerSpec],
    agent: Identity | str,
    interval_s: float = 5.0,
) -> None:
    """Update the lag gauges of `specs` every `interval_s` until cancelled (never returns).

    Safe as an agent background task: a failed read is logged and retried on the next round,
    never raised.
    """
    sampler = LagSampler(js, specs, agent)
    while True:
        try:
            await sampler.sample()
        except asyncio.CancelledError:
            raise
        except Exception:  # the tracker must never end the agent
            log.exception("%s: lag sampling failed", sampler.agent)
        await asyncio.sleep(interval_s)
