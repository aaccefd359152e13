"""The retrieval index: MiniLM embeddings of the passages in a FAISS inner-product index, cached.

The cache directory holds `index.faiss`, `passages.json` and `fingerprint` (sha256 of the
documents' contents, the encoder's name and the splitter version). `KnowledgeIndex.open` loads the
cache when the fingerprint matches and rebuilds it otherwise, so editing a document is enough.
The encoder's name says which backend and precision computed the vectors, so an index built by
one is never searched with another's vectors.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from knowledge.encoder import Backend, Encoder, default_backend, encoder_name, load_encoder
from knowledge.passages import DEFAULT_DOCS_DIR, Passage, fingerprint, load_passages

log = logging.getLogger("tradeops.knowledge")

INDEX_FILE = "index.faiss"
PASSAGES_FILE = "passages.json"
FINGERPRINT_FILE = "fingerprint"
CACHE_DIRNAME = "knowledge"
QUERY_CACHE_SIZE = 4096


def default_cache_dir(data_dir: Path) -> Path:
    """Return where the index of a stack's data directory is cached: `<data_dir>/knowledge`."""
    return data_dir / CACHE_DIRNAME


@dataclass(frozen=True)
class Hit:
    """One passage found for a query."""

    passage: Passage
    score: float
    """Cosine similarity of query and passage (normalized vectors, inner product)."""

    @property
    def ref(self) -> str:
        return self.passage.ref


class KnowledgeIndex:
    """Batched semantic search over the firm's documents."""

    def __init__(
        self,
        passages: Sequence[Passage],
        index: Any,
        encoder: Encoder | None = None,
        *,
        cache_dir: Path | None = None,
        rebuilt: bool = False,
        query_cache_size: int = QUERY_CACHE_SIZE,
        backend: Backend | None = None,
    ) -> None:
        if index.ntotal != len(passages):
            raise ValueError(f"index holds {index.ntotal} vectors for {len(passages)} passages")
        self.passages = tuple(passages)
        self._encoder = encoder
        self._backend = backend or default_backend()
        self.cache_dir = cache_dir
        self.rebuilt = rebuilt
        """True when `open` had to (re)build the index rather than load it."""
        self._index = index
        self._cache: OrderedDict[tuple[str, int], list[Hit]] = OrderedDict()
        self._cache_size = query_cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use (a loaded cache needs no model until then)."""
        if self._encoder is None:
            self._encoder = load_encoder(self._backend)
        return self._encoder

    def warm(self) -> None:
        """Load the encoder and run one query, so the first real search is not slow."""
        self._search_uncached(["warm up"], 1)

    # -- building and loading ------------------------------------------------------------------

    @classmethod
    def build(cls, passages: Sequence[Passage], encoder: Encoder) -> KnowledgeIndex:
        """Embed `passages` and return an in-memory index."""
        vectors = encoder.encode([p.embedding_text() for p in passages])
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(passages, index, encoder, rebuilt=True)

    @classmethod
    def open(
        cls,
        cache_dir: Path,
        docs_dir: Path = DEFAULT_DOCS_DIR,
        encoder: Encoder | None = None,
        *,
        force: bool = False,
        backend: Backend | None = None,
    ) -> KnowledgeIndex:
        """Load the cached index of `docs_dir`, or build and cache it when stale or missing.

        `encoder` (when given) or else `backend` (None: `$TRADEOPS_ENCODER`, else OpenVINO)
        embeds passages and queries. Loading a current cache does not load the model; the first
        search does (or `warm`).
        """
        backend = backend or default_backend()
        wanted = fingerprint(docs_dir, encoder.name if encoder else encoder_name(backend))
        if not force:
            cached = cls._load(cache_dir, wanted, encoder, backend)
            if cached is not None:
                return cached
        started = time.perf_counter()
        built = cls.build(load_passages(docs_dir), encoder or load_encoder(backend))
        try:
            built._save(cache_dir, wanted)
            built.cache_dir = cache_dir
        except OSError as exc:
            log.warning(
                "could not cache the knowledge index in %s (%s); using it from memory, it will "
                "be rebuilt at the next start",
                cache_dir,
                exc,
            )
        log.info(
            "knowledge index built: %d passages in %.2fs, cached in %s",
            len(built),
            time.perf_counter() - started,
            cache_dir,
        )
        return built

    @classmethod
    def _load(
        cls, cache_dir: Path, wanted: str, encoder: Encoder | None, backend: Backend
    ) -> KnowledgeIndex | None:
        try:
            if (cache_dir / FINGERPRINT_FILE).read_text().strip() != wanted:
                return None
            doc = json.loads((cache_dir / PASSAGES_FILE).read_text(encoding="utf-8"))
            if doc.get("fingerprint") != wanted:
                return None  # a concurrent rebuild is half-way through; build our own
            passages = [Passage(**p) for p in doc["passages"]]
            index = faiss.read_index(str(cache_dir / INDEX_FILE))
            return cls(passages, index, encoder, cache_dir=cache_dir, backend=backend)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            log.info("knowledge index cache in %s not usable (%s); rebuilding", cache_dir, exc)
            return None

    def _save(self, cache_dir: Path, stamp: str) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        suffix = f".tmp-{os.getpid()}-{threading.get_ident()}"
        doc = {
            "fingerprint": stamp,
            "model": self.encoder.name,
            "passages": [asdict(p) for p in self.passages],
        }
        writes: list[tuple[Path, Path]] = []
        for name in (INDEX_FILE, PASSAGES_FILE, FINGERPRINT_FILE):  # the fingerprint goes last
            writes.append((cache_dir / f"{name}{suffix}", cache_dir / name))
        faiss.write_index(self._index, str(writes[0][0]))
        writes[1][0].write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        writes[2][0].write_text(stamp + "\n")
        for tmp, final in writes:
            tmp.replace(final)

    # -- searching -----------------------------------------------------------------------------

    def cached(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]] | None:
        """Return `search(queries, k)` if every query is in the cache, else None (no model call).

        Cheap enough for the event loop: the common batch of ordinary orders needs no thread.
        """
        k = max(0, min(k, len(self.passages)))
        with self._lock:
            found = [self._cache.get((text, k)) for text in queries]
            if any(hit is None for hit in found):
                return None
            for text in queries:
                self._cache.move_to_end((text, k))
            self.cache_hits += len(queries)
        return [list(hits) for hits in found if hits is not None]

    def search(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]]:
        """Return the `k` best passages for each query, best first.

        New query texts are embedded together in one call; repeated texts come from an LRU cache.
        """
        k = max(0, min(k, len(self.passages)))
        results: list[list[Hit] | None] = []
        missing: list[str] = []
        with self._lock:
            for text in queries:
                hit = self._cache.get((text, k))
                if hit is not None:
                    self._cache.move_to_end((text, k))
                    self.cache_hits += 1
                elif text not in missing:
                    missing.append(text)
                results.append(hit)
        if missing and k > 0:
            found = self._search_uncached(missing, k)
            with self._lock:
                for text, hits in zip(missing, found, strict=True):
                    self._cache[(text, k)] = hits
                    self._cache.move_to_end((text, k))
                    self.cache_misses += 1
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            fresh = dict(zip(missing, found, strict=True))
        else:
            fresh = {text: [] for text in missing}
        return [
            list(r) if r is not None else list(fresh[q])
            for r, q in zip(results, queries, strict=True)
        ]

    def _search_uncached(self, texts: Sequence[str], k: int) -> list[list[Hit]]:
        vectors = self.encoder.encode(texts)
        scores, ids = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return [
            [
                Hit(self.passages[int(i)], float(score))
                for score, i in zip(row_scores, row_ids, strict=True)
                if i >= 0
            ]
            for row_scores, row_ids in zip(scores, ids, strict=True)
        ]
