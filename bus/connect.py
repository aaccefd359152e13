"""Connect to NATS as one identity: mutual TLS, a private inbox, reconnect forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import ModuleType

from nats.aio.client import Client as NATS

import nats
from bus.identity import Credentials
from contracts.subjects import inbox_prefix

log = logging.getLogger("tradeops.bus")

MIN_RECONNECT_WAIT_S = 0.1
MAX_RECONNECT_WAIT_S = 2.0

ReconnectHook = Callable[[], Awaitable[None]]


def metrics() -> ModuleType:
    """`bus.metrics`, imported when a connection first has something to count: a one-shot
    command that never loses its connection does not load prometheus_client."""
    import bus.metrics  # noqa: PLC0415

    return bus.metrics


async def connect(
    url: str | list[str],
    credentials: Credentials,
    *,
    name: str | None = None,
    on_reconnect: ReconnectHook | None = None,
    connect_timeout_s: float = 5.0,
    max_reconnect_attempts: int = -1,
    allow_reconnect: bool = True,
) -> NATS:
    """Return a connection authenticated by `credentials`' client certificate.

    Permission violations reach only the error callback in nats-py (request-style calls just
    time out), so they are logged and counted in `tradeops_permission_violations_total`.
    """
    identity = str(credentials.identity)
    holder: list[NATS] = []

    async def error_cb(exc: Exception) -> None:
        text = str(exc)
        refused = "authorization violation" in text.lower()  # e.g. a revoked identity
        if (isinstance(exc, OSError) or refused) and holder:
            # Back off between reconnect attempts: nats-py sleeps `reconnect_time_wait`.
            wait = holder[0].options["reconnect_time_wait"]
            holder[0].options["reconnect_time_wait"] = min(wait * 2, MAX_RECONNECT_WAIT_S)
        if "permissions violation" in text.lower():
            metrics().PERMISSION_VIOLATIONS.labels(identity=identity).inc()
            log.error("permission violation for %s: %s", identity, text)
        else:
            log.warning("nats error for %s: %s", identity, text)

    async def disconnected_cb() -> None:
        if holder and holder[0].is_closed:
            return  # our own close(), not an outage
        metrics().CONNECTION_EVENTS.labels(identity=identity, event="disconnected").inc()
        log.warning("%s disconnected from NATS", identity)

    async def reconnected_cb() -> None:
        metrics().CONNECTION_EVENTS.labels(identity=identity, event="reconnected").inc()
        log.info("%s reconnected to NATS", identity)
        holder[0].options["reconnect_time_wait"] = MIN_RECONNECT_WAIT_S
        if on_reconnect is not None:
            await on_reconnect()

    servers = [url] if isinstance(url, str) else url
    nc = await nats.connect(
        servers=servers,
        name=name or identity,
        tls=credentials.ssl_context(),
        inbox_prefix=inbox_prefix(identity),
        allow_reconnect=allow_reconnect,
        max_reconnect_attempts=max_reconnect_attempts,
        reconnect_time_wait=MIN_RECONNECT_WAIT_S,
        connect_timeout=connect_timeout_s,
        error_cb=error_cb,
        disconnected_cb=disconnected_cb,
        reconnected_cb=reconnected_cb,
        pending_size=64 * 1024 * 1024,
    )
    holder.append(nc)
    return nc
