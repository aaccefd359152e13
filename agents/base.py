"""The shared agent: one identity, its consumers, the trading state, a health endpoint.

A concrete agent declares its consumers and handlers (`workers`), opens its dependencies
(`open`), and may add background tasks (`background`). Everything bus-shaped happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from agents.common.http import HealthServer
from agents.common.lag import track_lag
from agents.settings import Settings
from bus import (
    BatchHandler,
    ConsumerRuntime,
    Credentials,
    Publisher,
    RuntimeStats,
    Signer,
    TradingStateWatch,
    Verifier,
    connect,
    decode_advisory,
    exhausted_handler,
)
from bus.handling import Decoder, Pacing
from contracts import Identity, TradingState
from contracts import topology as t

log = logging.getLogger("tradeops.agent")


@dataclass(frozen=True)
class Worker:
    """One consumer of the agent and how its messages are decoded and handled."""

    spec: t.ConsumerSpec
    decode: Decoder[Any]
    handler: BatchHandler[Any]
    pacing: Pacing = field(default_factory=Pacing)
    """How much the consumer works on at once (`bus.runtime`); by default one batch."""


class Agent:
    """Base of every agent process."""

    identity: Identity
    verify_inputs = True
    """Act on an input only when its signer may publish its subject (`bus.runtime`): the agents
    that decide, execute and book. The analyst only advises (the gate checks what it carries)
    and the ingestor's inputs are unsigned client submissions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.credentials = Credentials(self.identity, settings.certs_dir)
        self.stats = RuntimeStats()
        self.verifier = Verifier.from_dir(settings.certs_dir)
        self._stop = asyncio.Event()
        self._runtimes: list[ConsumerRuntime[Any]] = []
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._publisher: Publisher | None = None
        self._trading: TradingStateWatch | None = None

    # -- what a concrete agent provides ---------------------------------------------------------

    async def open(self) -> None:
        """Open dependencies (database, model, index). Called once connected."""

    async def close(self) -> None:
        """Release dependencies."""

    def workers(self) -> Sequence[Worker]:
        """Return the agent's consumers; their max-deliveries consumers are added by the base."""
        raise NotImplementedError

    def background(self) -> Sequence[Coroutine[Any, Any, None]]:
        """Return extra long-running tasks (e.g. the market feed)."""
        return ()

    async def not_ready(self) -> list[str]:
        """Return reasons the agent's own dependencies are not ready."""
        return []

    async def on_reconnect(self) -> None:
        """Refresh what a disconnect may have made stale."""

    # -- shared mechanics ----------------------------------------------------------------------

    @property
    def nc(self) -> NATS:
        assert self._nc is not None, "agent not connected"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "agent not connected"
        return self._js

    @property
    def publisher(self) -> Publisher:
        assert self._publisher is not None, "agent not connected"
        return self._publisher

    @property
    def trading_state(self) -> TradingState:
        return self._trading.state if self._trading else TradingState.ACTIVE

    @property
    def trading(self) -> TradingStateWatch:
        assert self._trading is not None, "agent not connected"
        return self._trading

    def stop(self) -> None:
        self._stop.set()

    async def _reconnected(self) -> None:
        if self._trading is not None:
            await self._trading.refresh()
        await self.on_reconnect()

    async def connect(self) -> None:
        self._nc = await connect(
            self.settings.nats_servers(), self.credentials, on_reconnect=self._reconnected
        )
        self._js = self._nc.jetstream()
        signer = Signer.from_file(self.identity, self.credentials.signing_key_file)
        self._publisher = Publisher(self._js, signer)
        self._trading = TradingStateWatch(self._nc, self.identity, self.verifier)
        await self._trading.start()

    def build_runtimes(self) -> list[ConsumerRuntime[Any]]:
        runtimes: list[ConsumerRuntime[Any]] = []
        for worker in self.workers():
            runtimes.append(
                ConsumerRuntime(
                    self.js,
                    worker.spec,
                    worker.decode,
                    worker.handler,
                    self.publisher,
                    batch_size=self.settings.batch_size,
                    stats=self.stats,
                    verifier=self.verifier if self.verify_inputs else None,
                    pacing=worker.pacing,
                )
            )
            runtimes.append(
                ConsumerRuntime(
                    self.js,
                    t.dead_letter_consumer(worker.spec),
                    decode_advisory,
                    exhausted_handler(self.js, self.identity),
                    self.publisher,
                    batch_size=50,
                    stats=self.stats,
                )
            )
        return runtimes

    async def readiness(self) -> list[str]:
        reasons: list[str] = []
        if self._nc is None or not self._nc.is_connected:
            reasons.append("nats: not connected")
        if not self._runtimes or not all(r.bound for r in self._runtimes):
            reasons.append("consumers: not bound yet")
        return reasons + await self.not_ready()

    async def status(self) -> dict[str, Any]:
        consumers = []
        for runtime in self._runtimes:
            entry: dict[str, Any] = {"stream": runtime.spec.stream, "durable": runtime.spec.durable}
            try:
                info = await self.js.consumer_info(runtime.spec.stream, runtime.spec.durable)
                entry |= {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
            except Exception as exc:
                entry["error"] = repr(exc)
            consumers.append(entry)
        return {
            "identity": str(self.identity),
            "trading_state": (
                str(self.trading_state) if self._trading and self._trading.known else "unknown"
            ),
            "connected": bool(self._nc and self._nc.is_connected),
            "consumers": consumers,
            "processed": self.stats.processed,
            "failed": self.stats.failed,
            "dead_lettered": self.stats.dead_lettered,
            "last_error": self.stats.last_error,
            "ready_reasons": await self.readiness(),
        }

    async def run(self) -> None:
        """Connect, serve, consume until SIGTERM/SIGINT, then drain and close."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        health = HealthServer(
            self.settings.health_host,
            self.settings.health_ports[self.identity],
            self.readiness,
            self.status,
        )
        await health.start()
        await self.connect()
        await self.open()
        self._runtimes = self.build_runtimes()
        # A fetched batch keeps ~20 objects per message alive until settled; with default
        # thresholds the collector runs constantly and a full pass over the analyst's imports
        # takes ~260 ms. Freeze what start-up loaded and collect young objects less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20 * self.settings.batch_size, 20, 20)
        consuming = [asyncio.create_task(r.run()) for r in self._runtimes]
        extras = [asyncio.create_task(c) for c in self.background()]
        specs = [runtime.spec for runtime in self._runtimes]
        extras.append(asyncio.create_task(track_lag(self.js, specs, self.identity)))
        log.info("%s running with %d consumers", self.identity, len(self._runtimes))
        stopper = asyncio.create_task(self._stop.wait())
        await asyncio.wait([stopper, *consuming, *extras], return_when=asyncio.FIRST_COMPLETED)
        for task in (*consuming, *extras):
            if task.done() and task.exception() is not None:
                log.error("%s task failed", self.identity, exc_info=task.exception())
        log.info("%s draining", self.identity)
        for task in extras:
            task.cancel()
        for runtime in self._runtimes:
            runtime.stop()
        _done, pending = await asyncio.wait([*consuming, *extras], timeout=15)
        for task in pending:
            task.cancel()
        stopper.cancel()
        await self.close()
        # Acks and publishes are flushed; in-flight fetch requests need not be waited for.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 5)
        await self.nc.close()
        await health.stop()
