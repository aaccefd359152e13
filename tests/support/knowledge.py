"""A fast, deterministic stand-in for MiniLM: hashed bag of words, L2-normalized."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from knowledge.encoder import Vectors

DIM = 256


class HashEncoder:
    """Encodes by hashing lower-cased words into `DIM` buckets; counts its calls."""

    name = "test-hash-encoder"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9_]+", text.lower()):
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest())
                out[row, bucket % DIM] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out
