"""The id the ingestor gives a submission that names none: unguessable, and the same every time.

Every client learns stream sequences from its publish acks. An id computed from the sequence
alone (it was `uuid5(namespace, "SUBMISSIONS:<seq>")`) could be claimed by one client before
another's submission arrived, and that submission was then dead-lettered `intent_id_conflict`.
So the id is keyed: the first 16 bytes of HMAC-SHA256("SUBMISSIONS:<seq>") under a key derived
from the ingestor's own Ed25519 signing key, with the version 8 and variant bits set.

- Only the ingestor can compute it: whoever holds that key can sign as the ingestor anyway.
- It is the same on every delivery of one submission, so a crash between publishing
  `intent.accepted` and the ack re-emits the same intent rather than a second one. (Rotating the
  ingestor's signing key while a submission is unacknowledged would give that one a new id.)
- It is never a submission's public name (`contracts.base.submission_ref`): its top bit is set.
- Nobody else re-derives it: the acceptance records `submission_seq`, and the audit and the trail
  join an id-less submission to its intent by that sequence (`ops.audit.facts.join_submissions`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import topology as t

KEY_CONTEXT = b"tradeops ingestor: assigned intent ids v1"
"""Separates this key from any other use of the signing key's seed."""


def assignment_key(signing_key: Ed25519PrivateKey) -> bytes:
    """Return the secret the ingestor keys assigned ids with, derived from its signing key."""
    return hmac.new(signing_key.private_bytes_raw(), KEY_CONTEXT, hashlib.sha256).digest()


def load_assignment_key(signing_key_file: Path) -> bytes:
    """Return the assignment key of the Ed25519 signing key in `signing_key_file` (PEM)."""
    key = serialization.load_pem_private_key(signing_key_file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{signing_key_file} is not an Ed25519 private key")
    return assignment_key(key)


def assigned_intent_id(key: bytes, submission_seq: int) -> uuid.UUID:
    """Return the id of the submission at `submission_seq` in SUBMISSIONS that names none."""
    message = f"{t.SUBMISSIONS}:{submission_seq}".encode()
    raw = bytearray(hmac.new(key, message, hashlib.sha256).digest()[:16])
    raw[0] |= 0x80  # never a submission's public name, whose first bytes are zero
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: custom
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant: RFC 9562
    return uuid.UUID(bytes=bytes(raw))
