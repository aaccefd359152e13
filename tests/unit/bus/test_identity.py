"""bus.identity: the one certificate layout, and the credentials an identity connects with."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from bus.identity import CertPaths, Credentials
from contracts import Identity


def test_cert_paths_name_every_file_inside_the_certs_dir(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    assert (paths.ca, paths.ca_key, paths.revoked) == (
        tmp_path / "ca.pem",
        tmp_path / "ca-key.pem",
        tmp_path / "revoked.json",
    )
    assert paths.cert(Identity.RISK) == tmp_path / "risk.pem"
    assert paths.key(Identity.RISK) == tmp_path / "risk-key.pem"
    assert paths.signing_key(Identity.RISK) == tmp_path / "risk-signing-key.pem"
    assert paths.verify_key("risk") == tmp_path / "risk-signing.pub"


def test_no_two_identities_share_a_file(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    files = [
        f(i) for i in Identity for f in (paths.cert, paths.key, paths.signing_key, paths.verify_key)
    ]
    files += [paths.ca, paths.ca_key, paths.revoked]
    assert len(files) == len(set(files))


def test_credentials_point_at_their_identitys_files_in_the_layout(tmp_path: Path) -> None:
    creds = Credentials(Identity.EXECUTOR, tmp_path)
    paths = CertPaths(tmp_path)
    assert creds.paths == paths
    assert creds.ca_file == paths.ca
    assert creds.cert_file == paths.cert(Identity.EXECUTOR)
    assert creds.key_file == paths.key(Identity.EXECUTOR)
    assert creds.signing_key_file == paths.signing_key(Identity.EXECUTOR)


@pytest.mark.parametrize("identity", list(Identity))
def test_certs_init_writes_every_file_the_layout_names(certs_dir: Path, identity: Identity) -> None:
    paths = CertPaths(certs_dir)
    assert paths.ca.is_file()
    for path in (paths.cert(identity), paths.key(identity), paths.signing_key(identity)):
        assert path.is_file(), path
    assert paths.verify_key(identity).is_file()


def test_ssl_context_presents_the_identitys_certificate_and_checks_the_server(
    certs_dir: Path,
) -> None:
    ctx = Credentials(Identity.ANALYST, certs_dir).ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1


def test_ssl_context_names_the_missing_file_and_the_command_that_creates_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    creds = Credentials(Identity.CLIENT, data_dir / "certs")
    with pytest.raises(FileNotFoundError) as raised:
        creds.ssl_context()
    message = str(raised.value)
    assert str(creds.ca_file) in message
    assert f"tradeops certs init --data-dir {data_dir}" in message


def test_ssl_context_refuses_a_key_that_is_not_the_certificates(
    certs_dir: Path, tmp_path: Path
) -> None:
    mixed = tmp_path / "certs"
    mixed.mkdir()
    ours, theirs = CertPaths(certs_dir), CertPaths(mixed)
    theirs.ca.write_bytes(ours.ca.read_bytes())
    theirs.cert("client").write_bytes(ours.cert("client").read_bytes())
    theirs.key("client").write_bytes(ours.key("ops").read_bytes())
    with pytest.raises(ssl.SSLError):
        Credentials(Identity.CLIENT, mixed).ssl_context()
