"""Signatures already verified, kept as keyed MACs so a re-audit skips the Ed25519 work.

An entry is `blake2b(subject, payload, signer, signature; key=K)`, 16 bytes, stored only for a
signature that verified. `K` is derived from the ops signing key and every identity's public
key: without the ops private key nobody can add an entry that a later audit would accept, and
rotating any key makes the old entries match nothing (the file starts over). Without the ops
key the cache lives in memory only (identical messages are still verified once per run).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.identity import CertPaths
from contracts import Identity

MAGIC = b"tradeops-audit-cache-v1\n"
DIGEST_BYTES = 16
FINGERPRINT_BYTES = 16


def derive_key(certs_dir: Path) -> bytes | None:
    """Return the cache key for this set of identities, or None without the ops signing key."""
    private = CertPaths(certs_dir).signing_key(Identity.OPS)
    if not private.exists():
        return None
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        return None
    material = hashlib.blake2b(digest_size=32, person=b"tradeops-audit")
    material.update(
        key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    for identity in Identity:
        public = CertPaths(certs_dir).verify_key(identity)
        material.update(public.read_bytes() if public.exists() else b"-")
    return material.digest()


class VerifiedCache:
    """A set of verified (subject, payload, signer, signature) digests, optionally on disk."""

    def __init__(self, key: bytes | None = None, path: Path | None = None) -> None:
        self.persistent = key is not None and path is not None
        self._key = key or secrets.token_bytes(32)
        self._path = path if self.persistent else None
        self._fingerprint = hashlib.blake2b(
            self._key, digest_size=FINGERPRINT_BYTES, person=b"fingerprint"
        ).digest()
        self._known: set[bytes] = set()
        self._new: list[bytes] = []
        self._rewrite = False
        self.loaded = 0

    @classmethod
    def open(cls, certs_dir: Path, path: Path | None) -> VerifiedCache:
        """Load the cache at `path` (None: in memory only)."""
        cache = cls(derive_key(certs_dir) if path is not None else None, path)
        cache._load()
        return cache

    def _load(self) -> None:
        if self._path is None:
            return
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            self._rewrite = True
            return
        head = len(MAGIC) + FINGERPRINT_BYTES
        if raw[: len(MAGIC)] != MAGIC or raw[len(MAGIC) : head] != self._fingerprint:
            self._rewrite = True  # another format or other keys: start over
            return
        body = raw[head:]
        usable = len(body) - len(body) % DIGEST_BYTES
        self._known = {body[i : i + DIGEST_BYTES] for i in range(0, usable, DIGEST_BYTES)}
        self.loaded = len(self._known)

    def digest(self, subject: str, payload: bytes, signer: str, signature: str) -> bytes:
        mac = hashlib.blake2b(key=self._key, digest_size=DIGEST_BYTES)
        for part in (subject.encode(), payload, signer.encode(), signature.encode()):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._known

    def add(self, digest: bytes) -> None:
        if digest not in self._known:
            self._known.add(digest)
            self._new.append(digest)

    def save(self) -> None:
        """Append the new entries (or write the file afresh)."""
        if self._path is None or not (self._new or self._rewrite):
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._rewrite:
            tmp = self._path.with_suffix(".tmp")
            tmp.write_bytes(MAGIC + self._fingerprint + b"".join(self._known))
            os.replace(tmp, self._path)
            self._rewrite = False
        else:
            with self._path.open("ab") as out:
                out.write(b"".join(self._new))
        self._new.clear()
