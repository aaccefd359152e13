"""Revoking an identity on a running stack: its connection closed at once, every agent untouched.

`tradeops certs revoke` writes the denylist, re-renders the running server's configuration and
reloads it. What nats-server does on that reload (observed, and asserted here): the revoked
identity's open connection is closed with `Authorization Violation`, its reconnects are refused
the same way, and every other connection stays up without a reconnect.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request
import uuid
from pathlib import Path

import pytest

import nats
from bus import Credentials
from bus.identity import CertPaths
from contracts import AGENTS, Identity
from ops.pki.natsconf import revoked_file
from tests.support.certs import connect_refused, revoke
from tests.support.pipeline import eventually
from tests.support.stack import connect_to, outcomes, running_stack, terminal_count

pytestmark = pytest.mark.integration


def tls_context(certs: CertPaths, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.cert(name)), str(certs.key(name)))
    return ctx


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def disconnects(url: str) -> float:
    """Return the NATS disconnects an agent process has counted (its /metrics)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tradeops_connection_events_total{") and 'event="disconnected"' in line
    )


@pytest.mark.slow
async def test_revoking_client_closes_its_connection_refuses_new_ones_and_agents_keep_running(
    stack_dir: Path,
) -> None:
    async with running_stack(stack_dir) as stack:
        # Arrange: a connected client (reconnecting, as a real one would), ops, the agents' pids
        certs = CertPaths(stack.settings.certs_dir)
        errors: list[str] = []
        disconnected, closed = asyncio.Event(), asyncio.Event()

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        async def on_disconnect() -> None:
            disconnected.set()

        async def on_closed() -> None:
            closed.set()

        client = await nats.connect(
            servers=[stack.layout.url],
            tls=tls_context(certs, str(Identity.CLIENT)),
            inbox_prefix="_INBOX.client",
            reconnect_time_wait=0.1,
            max_reconnect_attempts=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            closed_cb=on_closed,
        )
        ops = await connect_to(stack, Identity.OPS)
        await client.jetstream().publish("intent.submitted.BTC-USD", b"not an intent")
        pids = {a: stack.components[str(a)].proc.pid for a in AGENTS}  # type: ignore[union-attr]

        # Act
        result = await asyncio.to_thread(revoke, "client", "--data-dir", str(stack.data_dir))

        # Assert: recorded, reloaded, the open connection closed and its reconnects refused
        assert result.exit_code == 0, result.output
        assert "revoked: client" in result.output and "reloaded" in result.output
        [entry] = json.loads(revoked_file(certs).read_text())["revoked"]
        assert entry["identity"] == "client" and entry["serial"]
        await asyncio.wait_for(disconnected.wait(), 5)
        await asyncio.wait_for(closed.wait(), 10)
        assert any("authorization violation" in e.lower() for e in errors), errors
        refused = await connect_refused(
            stack.layout.url, Credentials(Identity.CLIENT, certs.certs_dir)
        )
        assert "authorization violation" in str(refused).lower()

        # ... while ops and every agent kept their connections: same process, ready, no disconnect
        assert ops.is_connected and ops.stats["reconnects"] == 0
        for agent in AGENTS:
            component = stack.components[str(agent)]
            assert component.proc is not None and component.proc.pid == pids[agent]
            assert component.restarts == 0
            assert component.health_url is not None
            assert await asyncio.to_thread(ready, component.health_url)
            assert await asyncio.to_thread(disconnects, component.health_url) == 0
        # ... and the pipeline still decides intents (submitted by ops, which may publish them)
        iid = str(uuid.uuid4())
        body = {"intent_id": iid, "account": "paper-1", "symbol": "BTC-USD", "side": "buy",
                "quantity": "0.01"}  # fmt: skip
        await ops.jetstream().publish("intent.submitted.BTC-USD", json.dumps(body).encode())

        async def decided() -> bool:
            return terminal_count((await outcomes(ops)).get(iid) or {}) == 1  # type: ignore[arg-type]

        await eventually(decided, timeout_s=30)
        await ops.close()
        await client.close()
