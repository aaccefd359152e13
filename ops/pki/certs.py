"""The private CA, the server certificate, one client certificate and signing key per identity."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bus.identity import CertPaths
from contracts import Identity

ORGANIZATION = "tradeops"
VALIDITY = dt.timedelta(days=825)

SERVER = "server"
"""The certificate nats-server presents to clients."""
ROUTE = "route"
"""The certificate cluster nodes present to each other on routes (server and client use)."""
CLUSTER_HOSTNAMES = ("nats", "nats-1", "nats-2", "nats-3")
"""Host names of the compose cluster's nodes, carried as DNS SANs by SERVER and ROUTE."""


def subject_dn(identity: Identity | str) -> str:
    """Return the RFC 4514 subject that nats-server maps to the identity's user."""
    return f"CN={identity},O={ORGANIZATION}"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ca(paths: CertPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{paths.ca_key} is not an EC private key")
    return cert, key


def _create_ca(paths: CertPaths) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("tradeops CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(paths.ca_key, _pem_key(key))
    paths.ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _server_sans() -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [
        x509.DNSName(host) for host in ("localhost", *CLUSTER_HOSTNAMES)
    ]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    return x509.SubjectAlternativeName(names)


def issue(
    paths: CertPaths,
    name: str,
    *,
    server: bool = False,
    route: bool = False,
    not_after: dt.datetime | None = None,
) -> None:
    """Issue `<name>.pem` / `<name>-key.pem` from the CA: a server, route or client certificate.

    Server and route certificates name `localhost`, the compose cluster's hosts and 127.0.0.1.
    A route certificate serves both ends of a route connection. Client certificates carry no
    SAN: nats-server would map an email SAN before the subject.
    """
    ca_cert, ca_key = _load_ca(paths)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server or route else []
    if route or not server:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server or route:
        builder = builder.add_extension(_server_sans(), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(paths.key(name), _pem_key(key))
    paths.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _create_signing_key(paths: CertPaths, identity: Identity) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    _write_private(paths.signing_key(identity), _pem_key(key))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    paths.verify_key(identity).write_bytes(public)


def init_certs(data_dir: Path) -> tuple[CertPaths, list[Path]]:
    """Create whatever is missing under `data_dir/certs`; never overwrite an existing key.

    Returns the paths and the list of files created by this call.
    """
    paths = CertPaths(data_dir / "certs")
    paths.certs_dir.mkdir(parents=True, exist_ok=True)
    paths.certs_dir.chmod(0o700)
    created: list[Path] = []
    if not paths.ca_key.exists():
        if paths.ca.exists():
            raise FileExistsError(
                f"{paths.ca} exists without its key {paths.ca_key}; restore the key or move the "
                "certificate away before re-running `tradeops certs init`"
            )
        _create_ca(paths)
        created += [paths.ca, paths.ca_key]
    for name in (SERVER, ROUTE, *(str(i) for i in Identity)):
        if not paths.key(name).exists():
            issue(paths, name, server=name == SERVER, route=name == ROUTE)
            created += [paths.cert(name), paths.key(name)]
    for identity in Identity:
        if not paths.signing_key(identity).exists():
            _create_signing_key(paths, identity)
            created += [paths.signing_key(identity), paths.verify_key(identity)]
    return paths, created
