"""Who may connect at all: the server's CA, a certificate, and an identity the permissions know."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import nats.errors
import pytest

from bus import Credentials, connect
from bus.identity import CertPaths
from ops.pki.certs import init_certs, issue
from ops.stack.natsd import NatsServer
from tests.support.permissions import (
    TLS_REFUSED,
    connect_once,
    server_log,
    tls_context,
    until,
)

pytestmark = pytest.mark.integration


# --- who may connect at all -------------------------------------------------------------------


async def test_connecting_with_own_certificate_succeeds(
    nats_server: NatsServer, certs_dir: Path
) -> None:
    # Arrange: the control case for the refusals below, through the same helper
    paths = CertPaths(certs_dir)
    ctx = tls_context(paths.ca, paths.cert("analyst"), paths.key("analyst"))
    errors: list[Exception] = []

    # Act
    nc = await connect_once(nats_server.layout.url, ctx, errors)

    # Assert
    try:
        assert nc.is_connected
        assert errors == []
    finally:
        await nc.close()


async def test_connecting_without_client_certificate_is_refused(
    nats_server: NatsServer, certs_dir: Path
) -> None:
    # Arrange: trusts the server's CA but presents no certificate
    ctx = tls_context(CertPaths(certs_dir).ca)
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(TLS_REFUSED):
        await connect_once(nats_server.layout.url, ctx, errors)
    assert await until(lambda: "didn't provide a certificate" in server_log(nats_server), 5)


async def test_connecting_with_certificate_from_another_ca_is_refused(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: a certificate with the analyst's own subject, issued by a foreign CA
    foreign, _ = init_certs(tmp_path / "foreign")
    ctx = tls_context(CertPaths(certs_dir).ca, foreign.cert("analyst"), foreign.key("analyst"))
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(TLS_REFUSED):
        await connect_once(nats_server.layout.url, ctx, errors)
    assert await until(lambda: "signed by unknown authority" in server_log(nats_server), 5)


async def test_connecting_with_valid_certificate_of_unknown_identity_is_an_authorization_violation(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange: "mallory" is issued by the real CA, into a copy (certs_dir is session-wide)
    copy = CertPaths(Path(shutil.copytree(certs_dir, tmp_path / "certs")))
    issue(copy, "mallory")
    ctx = tls_context(copy.ca, copy.cert("mallory"), copy.key("mallory"))
    errors: list[Exception] = []

    # Act / Assert
    with pytest.raises(nats.errors.Error) as refused:
        await connect_once(nats_server.layout.url, ctx, errors)
    assert "authorization violation" in str(refused.value).lower()


async def test_bus_connect_as_unknown_identity_fails_fast(
    nats_server: NatsServer, certs_dir: Path, tmp_path: Path
) -> None:
    # Arrange
    copy = Path(shutil.copytree(certs_dir, tmp_path / "certs"))
    issue(CertPaths(copy), "mallory")
    credentials = Credentials("mallory", copy)  # type: ignore[arg-type]

    # Act / Assert
    with pytest.raises(nats.errors.Error) as refused:
        async with asyncio.timeout(5):
            await connect(
                nats_server.layout.url,
                credentials,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout_s=2,
            )
    assert "authorization violation" in str(refused.value).lower()
