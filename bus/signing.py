"""Ed25519 signatures on every published event: who said what, checkable on replay."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.headers import SIGNATURE as SIGNATURE_HEADER
from bus.headers import SIGNER as SIGNER_HEADER
from bus.identity import CertPaths
from contracts import Identity


class SignatureStatus(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN_SIGNER = "unknown_signer"
    INVALID = "invalid"


def _signed_bytes(subject: str, payload: bytes) -> bytes:
    # The subject is signed too, so an event cannot be replayed onto another subject.
    return subject.encode() + b"\n" + payload


class Signer:
    """Signs payloads as one identity."""

    def __init__(self, identity: Identity, key: Ed25519PrivateKey) -> None:
        self.identity = identity
        self._key = key

    @classmethod
    def from_file(cls, identity: Identity, path: Path) -> Signer:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(identity, key)

    def headers(self, subject: str, payload: bytes) -> dict[str, str]:
        """Return the signature headers for `payload` published on `subject`."""
        sig = self._key.sign(_signed_bytes(subject, payload))
        return {SIGNER_HEADER: str(self.identity), SIGNATURE_HEADER: base64.b64encode(sig).decode()}


class Verifier:
    """Checks signatures against the known identities' public keys."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_dir(cls, certs_dir: Path) -> Verifier:
        keys: dict[str, Ed25519PublicKey] = {}
        for identity in Identity:
            path = CertPaths(certs_dir).verify_key(identity)
            if path.exists():
                key = serialization.load_pem_public_key(path.read_bytes())
                if isinstance(key, Ed25519PublicKey):
                    keys[str(identity)] = key
        return cls(keys)

    def check(
        self, subject: str, payload: bytes, headers: Mapping[str, str] | None
    ) -> tuple[SignatureStatus, str | None]:
        """Return the signature status and the claimed signer."""
        headers = headers or {}
        signer = headers.get(SIGNER_HEADER)
        signature = headers.get(SIGNATURE_HEADER)
        if not signer or not signature:
            return SignatureStatus.MISSING, signer
        key = self._keys.get(signer)
        if key is None:
            return SignatureStatus.UNKNOWN_SIGNER, signer
        try:
            key.verify(base64.b64decode(signature, validate=True), _signed_bytes(subject, payload))
        except (InvalidSignature, ValueError):
            return SignatureStatus.INVALID, signer
        return SignatureStatus.VALID, signer
