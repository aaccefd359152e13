"""Certificate revocation against real servers: denied at once, agents untouched, expiry enforced.

`tradeops certs revoke` writes the denylist, re-renders the running server's configuration and
reloads it. What nats-server does on that reload (observed, and asserted here): the revoked
identity's open connection is closed with `Authorization Violation`, its reconnects are refused
the same way, and every other connection stays up without a reconnect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import ssl
import urllib.request
import uuid
from pathlib import Path

import nats.errors
import pytest
from cryptography import x509
from typer.testing import CliRunner, Result

import nats
from bus import Credentials, connect
from bus.identity import CertPaths
from contracts import AGENTS, Identity
from ops.cli import app
from ops.pki.certs import issue
from ops.pki.natsconf import NatsLayout, revoked_file, write_config
from ops.stack.natsd import NatsServer
from tests.conftest import free_port
from tests.integration.stack_helpers import connect_to, outcomes, running_stack, terminal_count
from tests.support.pipeline import eventually

pytestmark = pytest.mark.integration

# What a client sees when the server refuses its certificate in the TLS handshake.
TLS_REFUSED = (ssl.SSLError, OSError, nats.errors.Error)


def revoke(*args: str) -> Result:
    """Run `tradeops certs revoke ...`."""
    return CliRunner().invoke(app, ["certs", "revoke", *args])


def tls_context(certs: CertPaths, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.cert(name)), str(certs.key(name)))
    return ctx


async def connect_refused(url: str, credentials: Credentials) -> BaseException:
    """Connect once, without reconnecting; return what refused the connection."""
    try:
        nc = await connect(
            url, credentials, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout_s=2
        )
    except Exception as exc:
        return exc
    await nc.close()
    raise AssertionError(f"{credentials.identity} connected to {url}; expected a refusal")


def x509_serial(certs: CertPaths, name: str) -> int:
    return x509.load_pem_x509_certificate(certs.cert(name).read_bytes()).serial_number


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


async def test_revoked_identity_in_the_denylist_is_refused_by_the_next_server_start(
    certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: a data dir of its own; no stack runs in it
    data_dir = tmp_path / "data"
    certs = CertPaths(Path(shutil.copytree(certs_dir, data_dir / "certs")))
    serial = f"{x509_serial(certs, 'analyst'):x}"

    # Act: revoke the analyst by its certificate's serial, twice
    first = revoke(serial, "--data-dir", str(data_dir), "--reason", "key leaked")
    second = revoke("analyst", "--data-dir", str(data_dir))
    layout = NatsLayout(
        certs=certs, store_dir=tmp_path / "js", port=free_port(), monitor_port=free_port()
    )
    server = NatsServer(layout, tmp_path / "nats.conf", tmp_path / "nats.log")
    await server.start()
    try:
        refused = await connect_refused(layout.url, Credentials(Identity.ANALYST, certs.certs_dir))
        risk = await connect(layout.url, Credentials(Identity.RISK, certs.certs_dir))
        await risk.close()
    finally:
        await server.stop()

    # Assert
    assert first.exit_code == 0 and "revoked: analyst" in first.output, first.output
    assert "no running stack" in first.output
    assert second.exit_code == 0 and "already revoked: analyst" in second.output
    [entry] = json.loads(revoked_file(certs).read_text())["revoked"]
    assert (entry["identity"], entry["serial"], entry["reason"]) == (
        "analyst",
        serial,
        "key leaked",
    )
    assert "authorization violation" in str(refused).lower()


def test_revoking_an_unknown_name_fails_and_records_nothing(
    certs_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    certs = CertPaths(Path(shutil.copytree(certs_dir, data_dir / "certs")))

    result = revoke("mallory", "--data-dir", str(data_dir))

    assert result.exit_code == 1
    assert "no identity certificate named or with serial 'mallory'" in result.output
    assert not revoked_file(certs).exists()


async def test_expired_client_certificate_is_refused_in_the_tls_handshake(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: the client's identity, issued by the real CA, expired a minute ago (in a copy)
    copy = CertPaths(Path(shutil.copytree(certs_dir, tmp_path / "certs")))
    issue(copy, str(Identity.CLIENT), not_after=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))

    # Act
    refused = await connect_refused(
        nats_server.layout.url, Credentials(Identity.CLIENT, copy.certs_dir)
    )

    # Assert
    assert isinstance(refused, TLS_REFUSED)

    async def logged() -> bool:
        return "certificate has expired" in nats_server.log_path.read_text()

    await eventually(logged, timeout_s=5)


def test_unreadable_denylist_stops_the_server_config_instead_of_ignoring_it(
    certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: a denylist that is not JSON
    certs = CertPaths(Path(shutil.copytree(certs_dir, tmp_path / "certs")))
    revoked_file(certs).write_text("client\n")
    layout = NatsLayout(certs=certs, store_dir=tmp_path / "js")

    # Act / Assert
    with pytest.raises(ValueError, match="is not a tradeops denylist"):
        write_config(layout, tmp_path / "nats.conf")
    assert not (tmp_path / "nats.conf").exists()
