"""Helpers of the least-privilege tests (tests/integration/contracts/test_permissions_*.py).

What a denial looks like to a client (a timeout, a refused handshake), the violation counter, the
subjects every agent works on, and ways to ask the server what it holds without trusting the caller.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from bus.pull import PullConsumer
from contracts import Identity
from contracts import subjects as s
from contracts import topology as t
from ops.stack.natsd import NatsServer

DENIED_TIMEOUT_S = 0.5
"""How long a request-style call waits before a denial surfaces as a timeout."""

ANSWER_GRACE_S = 0.3
"""How long to let a server's answer land before checking that it did not reach a stream."""

# What a request-style call raises when the server drops it for lack of permission.
REQUEST_DENIED = (nats.errors.TimeoutError, nats.errors.NoRespondersError)

# What a client sees when the server refuses its certificate in the TLS handshake: an SSL alert,
# a reset or an EOF, depending on timing (the server log says why, and the tests check it).
TLS_REFUSED = (ssl.SSLError, OSError, nats.errors.Error)

IID = uuid.UUID("5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21")
"""The intent every agent event of these tests is about (its subject's last token)."""


def event(prefix: str, token: str = "AAPL") -> str:
    """Return the subject of an agent's event about `IID`: `<prefix>.<token>.<IID>`."""
    return s.intent_event(prefix, token, IID)


# Each agent's first work consumer: what feeds it and what the agent publishes after handling.
WORK = {
    Identity.INGESTOR: (
        t.SUBMISSIONS,
        "ingestor",
        "intent.submitted.AAPL",
        event(s.INTENT_ACCEPTED),
    ),
    Identity.ANALYST: (t.INTENTS, "analyst", event(s.INTENT_ACCEPTED), event(s.INTENT_ANALYZED)),
    Identity.RISK: (t.INTENTS, "risk", event(s.INTENT_ANALYZED), event(s.RISK_APPROVED)),
    Identity.EXECUTOR: (t.RISK, "executor", event(s.RISK_APPROVED), event(s.ORDER_FILLED)),
    Identity.LEDGER: (t.ORDERS, "ledger", event(s.ORDER_FILLED), event(s.LEDGER_POSTED, "ACC1")),
}


def violations(identity: Identity | str) -> float:
    """Return the permission violations counted so far for `identity` (process-wide counter)."""
    value = REGISTRY.get_sample_value(
        "tradeops_permission_violations_total", {"identity": str(identity)}
    )
    return value or 0.0


async def until(condition: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; return whether it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def subscribed(nc: NATS, subject: str) -> Subscription:
    """Subscribe and wait until the server has the subscription.

    nats-py writes the PING of `flush()` straight to the socket, possibly ahead of the SUB still
    in its pending buffer, so one flush may return before the server has the subscription. By
    the second, the flusher task has written the SUB.
    """
    sub = await nc.subscribe(subject)
    await nc.flush()
    await nc.flush()
    return sub


async def stored(js: JetStreamContext, stream: str) -> int:
    """Return how many messages `stream` holds (asked as ops)."""
    info = await js.stream_info(stream)
    return int(info.state.messages)


async def topology_names(js: JetStreamContext) -> tuple[set[str], set[tuple[str, str]]]:
    """Return the stream names and the intent streams' (stream, consumer) names (asked as ops)."""
    streams = {str(i.config.name) for i in await js.streams_info()}
    consumers = set()
    for stream in (t.SUBMISSIONS, t.INTENTS):
        consumers |= {(stream, str(c.name)) for c in await js.consumers_info(stream)}
    return streams, consumers


def pull_request(durable: str, batch: int = 1) -> bytes:
    """Return a pull request for `durable` as its owner's runtime sends it (with its group)."""
    request: dict[str, object] = {"batch": batch, "expires": int(DENIED_TIMEOUT_S * 1e9)}
    group = t.consumer(durable).pinned_group
    if group is not None:
        request["group"] = group
    return json.dumps(request).encode()


async def pull_pinned(nc: NATS, durable: str, timeout_s: float = 2.0) -> list[Msg]:
    """Bind `durable` and pull from it as the agents' runtime does (taking over its pin)."""
    spec = t.consumer(durable)
    pull = PullConsumer(nc, spec.stream, spec.durable, batch=1, group=spec.pinned_group)
    await pull.bind()
    try:
        return await pull.next_batch(timeout_s)
    finally:
        await pull.unbind()


async def pinned_client(ops_nc: NATS, durable: str) -> str | None:
    """Return the pin id the server holds for `durable`'s priority group (asked as ops).

    nats-py's ConsumerInfo drops the priority groups' state, so this reads the API's answer.
    """
    spec = t.consumer(durable)
    subject = f"$JS.API.CONSUMER.INFO.{spec.stream}.{spec.durable}"
    info = await ops_nc.request(subject, b"", timeout=2)
    groups = json.loads(info.data).get("priority_groups") or []
    return next((g.get("pinned_client_id") for g in groups if g.get("pinned_client_id")), None)


def server_log(server: NatsServer) -> str:
    """Return what the test's nats-server has logged so far."""
    return server.log_path.read_text()


def tls_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Return a client TLS context trusting `ca`, presenting `cert` when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def connect_once(url: str, ctx: ssl.SSLContext, errors: list[Exception]) -> NATS:
    """Connect with `ctx`, no reconnect, collecting what the error callback reports."""

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    return await nats.connect(
        servers=[url],
        tls=ctx,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=2,
        error_cb=error_cb,
    )
