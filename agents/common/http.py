"""Each agent's loopback HTTP endpoint: /healthz, /readyz, /metrics, /status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Readiness = Callable[[], Awaitable[list[str]]]
"""Returns the reasons the agent is not ready (empty when ready)."""
StatusFn = Callable[[], Awaitable[dict[str, Any]]]


class HealthServer:
    """Serves the agent's health, readiness, metrics and status."""

    def __init__(self, host: str, port: int, readiness: Readiness, status: StatusFn) -> None:
        self.host = host
        self.port = port
        self._readiness = readiness
        self._status = status
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status_handler)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = await self._readiness()
        return web.json_response(
            {"ready": not reasons, "reasons": reasons}, status=503 if reasons else 200
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_handler(self, _request: web.Request) -> web.Response:
        return web.json_response(await self._status())
