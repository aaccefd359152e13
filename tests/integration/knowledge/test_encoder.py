"""The OpenVINO encoder with the real model: the torch reference's vectors, whatever the batch,
from a converted model cached on disk."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import knowledge.encoder as encoder_module
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from knowledge.encoder import (
    MAX_SEQ_TOKENS,
    Backend,
    OpenVINOEncoder,
    _load_openvino_encoder,
    encoder_name,
    load_encoder,
)
from ops.bench.rationales import rationale

pytestmark = pytest.mark.integration

MIN_COSINE = 0.999
ODD_TEXTS = [
    "  leading and trailing spaces  ",
    "",
    "Ünïcode café 日本語 — and an emoji 🚀",
    "kill switch " * MAX_SEQ_TOKENS,  # truncated, as by sentence-transformers
    "buy BTC-USD limit order; quantity 5% of max_quantity; notional 3% of max_notional",
]


@pytest.fixture(scope="module")
def openvino() -> OpenVINOEncoder:
    encoder = load_encoder(Backend.OPENVINO)
    assert isinstance(encoder, OpenVINOEncoder)
    return encoder


def test_vectors_match_sentence_transformers_on_torch(openvino: OpenVINOEncoder) -> None:
    texts = ODD_TEXTS + [rationale(3, i) for i in range(40)]

    cosines = np.sum(openvino.encode(texts) * load_encoder(Backend.TORCH).encode(texts), axis=1)

    assert cosines.min() >= MIN_COSINE, dict(zip(texts, cosines.round(5), strict=True))


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(openvino: OpenVINOEncoder) -> None:
    texts = [rationale(4, i) for i in range(40)] + ODD_TEXTS

    together = openvino.encode(texts)
    alone = np.vstack([openvino.encode([text]) for text in texts])
    reversed_order = openvino.encode(texts[::-1])[::-1]

    np.testing.assert_allclose(alone, together, atol=1e-6)
    np.testing.assert_allclose(reversed_order, together, atol=1e-6)
    assert openvino.encode([]).shape == (0, 384)


def test_concurrent_calls_get_their_own_vectors(openvino: OpenVINOEncoder) -> None:
    batches = [[rationale(5 + t, i) for i in range(20)] for t in range(4)]
    expected = [openvino.encode(batch) for batch in batches]
    got: dict[int, np.ndarray] = {}

    def run(t: int) -> None:
        got[t] = openvino.encode(batches[t])

    threads = [threading.Thread(target=run, args=(t,)) for t in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for t, vectors in enumerate(expected):
        np.testing.assert_allclose(got[t], vectors, atol=1e-6)


def test_the_converted_model_is_cached_and_a_corrupt_cache_converted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions: list[Path] = []
    convert = encoder_module._convert

    def counting(path: Path) -> object:
        conversions.append(path)
        return convert(path)

    monkeypatch.setattr(encoder_module, "_convert", counting)
    text = ["hedge the overnight exposure ahead of CPI"]

    first = _load_openvino_encoder(tmp_path).encode(text)
    again = _load_openvino_encoder(tmp_path).encode(text)
    (xml,) = tmp_path.glob("*/model.xml")
    xml.write_text("<not a model")
    repaired = _load_openvino_encoder(tmp_path).encode(text)

    assert len(conversions) == 2  # the first load and the repair, not the second load
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(repaired, first)
    assert [p.name for p in tmp_path.iterdir()] == [xml.parent.name]  # no staging left


def test_an_index_built_by_one_backend_is_rebuilt_for_the_other(tmp_path: Path) -> None:
    assert encoder_name(Backend.OPENVINO) != encoder_name(Backend.TORCH)

    by_openvino = KnowledgeIndex.open(tmp_path, DEFAULT_DOCS_DIR, backend=Backend.OPENVINO)
    for_torch = KnowledgeIndex.open(tmp_path, DEFAULT_DOCS_DIR, backend=Backend.TORCH)
    torch_again = KnowledgeIndex.open(tmp_path, DEFAULT_DOCS_DIR, backend=Backend.TORCH)

    assert by_openvino.rebuilt and for_torch.rebuilt and not torch_again.rebuilt
    assert torch_again.encoder.name == encoder_name(Backend.TORCH)
