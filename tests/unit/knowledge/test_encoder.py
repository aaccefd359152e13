"""The OpenVINO encoder's pure parts: padding chunks, pooling, names (no model loaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Encoding, Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from knowledge.encoder import (
    MODEL_NAME,
    PAD_TO_TOKENS,
    Backend,
    _mean_pooled,
    _padded,
    default_backend,
    encoder_name,
    model_cache_dir,
)


def encodings(*texts: str) -> list[Encoding]:
    vocab = {word: i + 1 for i, word in enumerate(["a", "b", "c", "d", "e", "f"])}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="a"))
    tokenizer.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    return tokenizer.encode_batch(list(texts))


def test_a_chunk_is_padded_to_a_multiple_of_the_pad_length_and_masked() -> None:
    ids, mask = _padded(encodings("a b c", "d"))

    assert ids.shape == mask.shape == (2, PAD_TO_TOKENS)
    assert ids[0, :3].tolist() == [1, 2, 3] and ids[1, :1].tolist() == [4]
    assert mask.sum(axis=1).tolist() == [3, 1]
    assert not ids[mask == 0].any()


def test_a_chunk_exactly_a_multiple_long_is_not_padded_further() -> None:
    ids, _ = _padded(encodings(" ".join(["b"] * PAD_TO_TOKENS)))

    assert ids.shape == (1, PAD_TO_TOKENS)


def test_pooling_averages_only_real_tokens_and_normalizes() -> None:
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(2, 5, 384)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)
    hidden_with_other_padding = hidden.copy()
    hidden_with_other_padding[0, 3:] = 1e3  # what padded positions hold must not matter

    vectors = _mean_pooled(hidden, mask)

    expected = hidden[0, :3].mean(axis=0)
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(_mean_pooled(hidden_with_other_padding, mask), vectors)


def test_backends_have_different_names_and_openvino_names_runtime_and_precision() -> None:
    name = encoder_name(Backend.OPENVINO)

    assert encoder_name(Backend.TORCH) == MODEL_NAME
    assert name.startswith(MODEL_NAME) and "OpenVINO" in name
    assert name.endswith((" bf16", " f32"))


def test_model_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEOPS_MODEL_CACHE", str(tmp_path / "models"))
    assert model_cache_dir() == tmp_path / "models"

    monkeypatch.delenv("TRADEOPS_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache_dir() == tmp_path / "xdg" / "tradeops" / "models"


def test_the_environment_chooses_the_default_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEOPS_ENCODER", raising=False)
    assert default_backend() is Backend.OPENVINO

    monkeypatch.setenv("TRADEOPS_ENCODER", " Torch ")
    assert default_backend() is Backend.TORCH
    assert encoder_name() == MODEL_NAME

    monkeypatch.setenv("TRADEOPS_ENCODER", "onnx")
    with pytest.raises(ValueError, match="TRADEOPS_ENCODER='onnx': not a backend"):
        default_backend()
