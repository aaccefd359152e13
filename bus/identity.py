"""An identity's credentials on disk: its client certificate, key, CA and signing key."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from contracts import Identity


@dataclass(frozen=True)
class Credentials:
    """Files that let one identity connect (mutual TLS) and sign what it publishes."""

    identity: Identity
    certs_dir: Path

    @property
    def ca_file(self) -> Path:
        return self.certs_dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.certs_dir / f"{self.identity}.pem"

    @property
    def key_file(self) -> Path:
        return self.certs_dir / f"{self.identity}-key.pem"

    @property
    def signing_key_file(self) -> Path:
        return self.certs_dir / f"{self.identity}-signing-key.pem"

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
