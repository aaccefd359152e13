"""The one certificate layout of a data directory, and an identity's credentials in it: its
client certificate, key, the CA and its signing key."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from contracts import Identity


@dataclass(frozen=True)
class CertPaths:
    """Where one data directory keeps its certificates and keys."""

    certs_dir: Path

    @property
    def ca(self) -> Path:
        return self.certs_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.certs_dir / "ca-key.pem"

    def cert(self, name: str) -> Path:
        return self.certs_dir / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.certs_dir / f"{name}-key.pem"

    def signing_key(self, identity: Identity | str) -> Path:
        return self.certs_dir / f"{identity}-signing-key.pem"

    def verify_key(self, identity: Identity | str) -> Path:
        return self.certs_dir / f"{identity}-signing.pub"

    @property
    def revoked(self) -> Path:
        """The revocation list `tradeops certs revoke` keeps (nats-server config reads it)."""
        return self.certs_dir / "revoked.json"


@dataclass(frozen=True)
class Credentials:
    """Files that let one identity connect (mutual TLS) and sign what it publishes."""

    identity: Identity
    certs_dir: Path

    @property
    def paths(self) -> CertPaths:
        return CertPaths(self.certs_dir)

    @property
    def ca_file(self) -> Path:
        return self.paths.ca

    @property
    def cert_file(self) -> Path:
        return self.paths.cert(self.identity)

    @property
    def key_file(self) -> Path:
        return self.paths.key(self.identity)

    @property
    def signing_key_file(self) -> Path:
        return self.paths.signing_key(self.identity)

    def ssl_context(self) -> ssl.SSLContext:
        """Return a client TLS context that presents this identity's certificate."""
        for path in (self.ca_file, self.cert_file, self.key_file):
            if not path.exists():
                raise FileNotFoundError(
                    f"{path} is missing; run `tradeops certs init --data-dir "
                    f"{self.certs_dir.parent}` to create the identities"
                )
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
        return ctx
