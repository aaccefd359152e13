"""Certificate revocation and expiry against a real nats-server: the denylist is enforced at the
next start, an unknown name records nothing, an expired certificate fails the handshake, and an
unreadable denylist stops the configuration. (The revocation of a running stack's client is
tests/system/test_revocation.py.)
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
from pathlib import Path

import nats.errors
import pytest
from cryptography import x509

import nats
from bus import Credentials, connect
from bus.identity import CertPaths
from contracts import Identity
from ops.cli.options import ExitCode
from ops.pki.certs import issue
from ops.pki.natsconf import NatsLayout, revoked_file, write_config
from ops.stack.natsd import NatsServer, free_port
from tests.support.certs import connect_refused, revoke
from tests.support.pipeline import eventually

pytestmark = pytest.mark.integration

# What a client sees when the server refuses its certificate in the TLS handshake.
TLS_REFUSED = (ssl.SSLError, OSError, nats.errors.Error)


def x509_serial(certs: CertPaths, name: str) -> int:
    return x509.load_pem_x509_certificate(certs.cert(name).read_bytes()).serial_number


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

    assert result.exit_code == ExitCode.NOT_FOUND
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
