"""Stream storage against its limits, as Prometheus gauges: what `TradeopsStreamNearLimit` reads.

The agents cannot read stream sizes (their permissions name only their own consumers), and
nats-server's monitoring port serves JSON, so this exporter reads every stream's bytes, messages
and configured limits as ops (one `$JS.API.STREAM.LIST` per refresh) and serves them on
loopback at `/metrics`. The embedded stack runs it on `storage_metrics_port`; elsewhere
`tradeops streams exporter` runs it.

Series (label `stream`; a KV bucket's stream is `KV_<bucket>`):
- `tradeops_stream_bytes`, `tradeops_stream_messages`: what the stream holds now;
- `tradeops_stream_max_bytes`: its configured byte limit (-1: none, which provisioning never
  leaves);
- `tradeops_stream_alert_ratio`: the share of `max_bytes` at which the alert fires
  (`[storage] alert_at_percent`), so the rule reads the configuration instead of repeating it;
- `tradeops_storage_scrape_ok`: 1 when the last refresh read the server, 0 when it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path

from aiohttp import web
from nats.aio.client import Client as NATS
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from bus import Credentials, connect
from contracts import Identity
from ops.streams import StreamReport, collect_streams

log = logging.getLogger(__name__)

REFRESH_EVERY_S = 5.0


def stored_bytes(directory: Path) -> int:
    """Bytes of the files under `directory` (0 when it does not exist yet)."""
    if not directory.exists():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def unbacked_bytes(store_dir: Path, max_file_store: int) -> int:
    """How much of the store's reservations the disk could not hold now (0: all of it).

    The server reserves stream limits against `max_file_store`, not against the disk: a store
    sized beyond the free space would let streams run the disk full before their limits."""
    probe = store_dir
    while not probe.exists():
        probe = probe.parent
    room = shutil.disk_usage(probe).free + stored_bytes(store_dir)
    return max(0, max_file_store - room)


class StorageMetrics:
    """The gauges, in a registry of their own (the process may serve other metrics)."""

    def __init__(self, alert_at_percent: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["stream"]
        self.bytes = Gauge(
            "tradeops_stream_bytes", "Bytes the stream stores", labels, registry=self.registry
        )
        self.messages = Gauge(
            "tradeops_stream_messages", "Messages the stream stores", labels, registry=self.registry
        )
        self.max_bytes = Gauge(
            "tradeops_stream_max_bytes",
            "The stream's configured byte limit (-1: none)",
            labels,
            registry=self.registry,
        )
        self.alert_ratio = Gauge(
            "tradeops_stream_alert_ratio",
            "Share of max_bytes at which TradeopsStreamNearLimit fires ([storage] "
            "alert_at_percent)",
            registry=self.registry,
        )
        self.scrape_ok = Gauge(
            "tradeops_storage_scrape_ok",
            "1 when the last read of the streams succeeded",
            registry=self.registry,
        )
        self.alert_ratio.set(alert_at_percent / 100.0)

    def update(self, reports: list[StreamReport]) -> None:
        for report in reports:
            if report.missing:
                continue
            self.bytes.labels(report.name).set(report.bytes)
            self.messages.labels(report.name).set(report.messages)
            self.max_bytes.labels(report.name).set(report.max_bytes)
        self.scrape_ok.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StorageExporter:
    """Refreshes `StorageMetrics` from the server every `REFRESH_EVERY_S` and serves them."""

    def __init__(
        self, nc: NATS, metrics: StorageMetrics, host: str, port: int, *, owns_connection: bool
    ) -> None:
        self.nc = nc
        self.metrics = metrics
        self.host = host
        self.port = port
        self._owns_connection = owns_connection
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        try:
            self.metrics.update(await collect_streams(self.nc.jetstream()))
        except Exception as exc:  # a failed read is a gauge, never a crash
            self.metrics.scrape_ok.set(0)
            log.warning("storage metrics: could not read the streams: %s", exc)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_EVERY_S)

    async def _serve_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start(self) -> None:
        await self.refresh()
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()
        self._task = asyncio.create_task(self._loop(), name="storage-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._owns_connection and not self.nc.is_closed:
            await self.nc.close()


async def serve(
    nats_url: str | list[str], certs_dir: Path, host: str, port: int, alert_at_percent: float
) -> StorageExporter:
    """Connect as ops and start serving the storage gauges on `host:port`."""
    nc = await connect(nats_url, Credentials(Identity.OPS, certs_dir))
    exporter = StorageExporter(
        nc, StorageMetrics(alert_at_percent), host, port, owns_connection=True
    )
    try:
        await exporter.start()
    except BaseException:
        await nc.close()
        raise
    return exporter
