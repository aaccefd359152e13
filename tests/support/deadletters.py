"""What a dead letter says of its original: where it is stored, its size and its digest."""

from __future__ import annotations

import hashlib

from contracts import DeadLetter


def refers_to(letter: DeadLetter, payload: bytes) -> bool:
    """Whether `letter` names exactly `payload` (by size and SHA-256), without carrying it."""
    return (
        letter.original_data_b64 == ""
        and letter.original_size == len(payload)
        and letter.original_sha256 == hashlib.sha256(payload).hexdigest()
    )
