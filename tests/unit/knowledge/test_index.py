"""The FAISS index: building, caching by fingerprint, batched search, the query cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from knowledge.index import FINGERPRINT_FILE, INDEX_FILE, PASSAGES_FILE
from tests.support.knowledge import HashEncoder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(DEFAULT_DOCS_DIR, target)
    return target


def test_open_builds_then_loads_the_cache_without_encoding_passages(
    docs: Path, tmp_path: Path
) -> None:
    encoder = HashEncoder()
    cache = tmp_path / "cache"

    built = KnowledgeIndex.open(cache, docs, encoder)
    loaded = KnowledgeIndex.open(cache, docs, encoder)

    assert built.rebuilt and not loaded.rebuilt
    assert {p.name for p in cache.iterdir()} == {INDEX_FILE, PASSAGES_FILE, FINGERPRINT_FILE}
    assert len(encoder.calls) == 1  # only the build encoded anything
    assert loaded.passages == built.passages


def test_changed_document_rebuilds_the_index(docs: Path, tmp_path: Path) -> None:
    encoder = HashEncoder()
    cache = tmp_path / "cache"
    KnowledgeIndex.open(cache, docs, encoder)
    runbook = docs / "kill-switch-runbook.md"
    runbook.write_text(runbook.read_text() + "\n## Drills\n\nPractise the kill switch monthly.\n")

    index = KnowledgeIndex.open(cache, docs, encoder)

    assert index.rebuilt
    assert "kill-switch-runbook.md#Drills" in {p.ref for p in index.passages}
    assert not KnowledgeIndex.open(cache, docs, encoder).rebuilt


def test_corrupt_cache_is_rebuilt(docs: Path, tmp_path: Path) -> None:
    encoder = HashEncoder()
    cache = tmp_path / "cache"
    KnowledgeIndex.open(cache, docs, encoder)
    (cache / PASSAGES_FILE).write_text("{not json")

    index = KnowledgeIndex.open(cache, docs, encoder)

    assert index.rebuilt and len(index) > 0


def test_search_embeds_a_batch_in_one_call_and_caches_repeated_queries(
    docs: Path, tmp_path: Path
) -> None:
    encoder = HashEncoder()
    index = KnowledgeIndex.open(tmp_path / "cache", docs, encoder)
    encoder.calls.clear()

    first = index.search(["kill switch halted", "dead letter retry", "kill switch halted"], k=3)
    again = index.search(["dead letter retry", "price collar limit"], k=3)

    assert encoder.calls == [["kill switch halted", "dead letter retry"], ["price collar limit"]]
    assert first[0] == first[2] and again[0] == first[1]
    assert all(len(hits) == 3 for hits in first + again)
    assert [h.score for h in first[0]] == sorted((h.score for h in first[0]), reverse=True)
    assert (index.cache_hits, index.cache_misses) == (1, 3)


def test_query_cache_evicts_the_least_recently_used(docs: Path, tmp_path: Path) -> None:
    encoder = HashEncoder()
    built = KnowledgeIndex.open(tmp_path / "cache", docs, encoder)
    index = KnowledgeIndex(built.passages, built._index, encoder, query_cache_size=2)

    index.search(["a"], 2)
    index.search(["b"], 2)
    index.search(["a"], 2)  # refreshes "a"
    index.search(["c"], 2)  # evicts "b"
    encoder.calls.clear()
    index.search(["a", "b"], 2)

    assert encoder.calls == [["b"]]


def test_k_larger_than_the_corpus_returns_every_passage(docs: Path, tmp_path: Path) -> None:
    index = KnowledgeIndex.open(tmp_path / "cache", docs, HashEncoder())

    (hits,) = index.search(["anything"], k=10_000)

    assert len(hits) == len(index)


def test_unwritable_cache_leaves_a_working_index_in_memory(docs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    index = KnowledgeIndex.open(blocker / "cache", docs, HashEncoder())

    assert index.rebuilt and index.cache_dir is None
    assert len(index.search(["kill switch"], k=2)[0]) == 2


def test_cached_answers_only_when_every_query_is_cached_and_never_encodes(
    docs: Path, tmp_path: Path
) -> None:
    encoder = HashEncoder()
    index = KnowledgeIndex.open(tmp_path / "cache", docs, encoder)
    searched = index.search(["kill switch halted", "dead letter retry"], k=3)
    encoder.calls.clear()

    both = index.cached(["dead letter retry", "kill switch halted"], k=3)
    partly = index.cached(["kill switch halted", "price collar limit"], k=3)
    other_k = index.cached(["kill switch halted"], k=2)

    assert both == [searched[1], searched[0]]
    assert partly is None and other_k is None
    assert encoder.calls == []
