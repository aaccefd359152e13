"""The analyst's working parts in one place: index, chat model, call window, provider health,
spend and the graph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.analyst.case import ReviewCase
from agents.analyst.config import AnalystSettings
from agents.analyst.graph import AnalystContext, InputState, Retriever, graph
from agents.analyst.guard import Judgement
from agents.analyst.health import ProviderHealth
from agents.analyst.providers import build_chat_model
from agents.analyst.reviewer import OfflineReviewer
from agents.analyst.spend import Spend
from agents.analyst.throttle import ThrottlePolicy
from agents.analyst.window import CallWindow
from agents.settings import Settings
from contracts import Analysis
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex, default_cache_dir, fingerprint
from knowledge.index import FINGERPRINT_FILE

Reviewed = list[tuple[int, Judgement]]
"""Judgements that are ready, each with the index of its case in the batch."""


def index_fingerprint(retriever: Retriever) -> str | None:
    """The fingerprint the index was loaded or built under: its own when it tells, else the
    one its cache directory recorded (None when neither is known)."""
    own = getattr(retriever, "fingerprint", None)
    if isinstance(own, str):
        return own
    cache_dir = getattr(retriever, "cache_dir", None)
    if isinstance(cache_dir, Path):
        try:
            return (cache_dir / FINGERPRINT_FILE).read_text().strip() or None
        except OSError:
            return None
    return None


@dataclass
class AnalystEngine:
    """Reviews batches of cases through the graph."""

    context: AnalystContext

    @classmethod
    def create(
        cls,
        settings: AnalystSettings,
        retriever: Retriever,
        fingerprint_of_index: str | None = None,
    ) -> AnalystEngine:
        """Build the engine for `settings` over an already loaded retriever."""
        choice = build_chat_model(settings)
        health = ProviderHealth(max_tokens_per_day=settings.max_tokens_per_day)
        window = CallWindow(settings.max_concurrency, settings.timeout_s)
        context = AnalystContext(
            retriever=retriever,
            model=choice.model,
            label=choice.label(),
            provider=str(choice.provider),
            remote=choice.remote,
            reviewer=OfflineReviewer(),
            health=health,
            top_k=settings.top_k,
            timeout_s=settings.timeout_s,
            window=window,
            throttle=ThrottlePolicy(settings.throttle_retries, settings.retry_after_max_s),
            spend=Spend(settings.prices),
            index_fingerprint=fingerprint_of_index or index_fingerprint(retriever),
        )
        if choice.remote:
            health.watch()
        return cls(context)

    @classmethod
    def load(
        cls, settings: Settings, docs_dir: Path = DEFAULT_DOCS_DIR, cache_dir: Path | None = None
    ) -> AnalystEngine:
        """Load the embedding model and the index (blocking: run it in a thread)."""
        index = KnowledgeIndex.open(cache_dir or default_cache_dir(settings.data_dir), docs_dir)
        index.warm()
        stamp = index_fingerprint(index) or fingerprint(docs_dir, index.encoder.name)
        return cls.create(settings.analyst, index, stamp)

    async def stream(self, cases: Sequence[ReviewCase]) -> AsyncIterator[Reviewed]:
        """Review a batch; yield judgements as they are ready, with their case's index."""
        if not cases:
            return
        updates = graph.astream(
            InputState(cases=list(cases)), context=self.context, stream_mode="updates"
        )
        async for chunk in updates:
            for node, update in chunk.items():
                if node == "guard":
                    yield list(enumerate(update["judgements"]))
                elif node == "review":
                    yield list(update["reviewed"])

    async def review(self, cases: Sequence[ReviewCase]) -> list[Judgement]:
        """Review a batch; one judgement per case, in order."""
        ready: dict[int, Judgement] = {}
        async for reviewed in self.stream(cases):
            ready.update(reviewed)
        return [ready[i] for i in range(len(cases))]

    async def analyze(self, cases: Sequence[ReviewCase]) -> list[Analysis]:
        """Review a batch; one analysis per case, in order."""
        return [j.analysis for j in await self.review(cases)]

    def capacity(self, horizon_s: float) -> int:
        """Intents this analyst can review within `horizon_s` at its window and call latency:
        what it may hold (fetch) at once. Never less than a full window."""
        window = self.context.window
        per_slot = horizon_s / max(window.latency_s, 0.001)
        return max(window.limit, int(window.limit * per_slot))

    def status(self) -> dict[str, Any]:
        """Return the provider's state for `/status`."""
        ctx = self.context
        doc: dict[str, Any] = {
            "provider": ctx.provider,
            "model": ctx.label,
            "prompt_version": ctx.prompt_version,
            "index_fingerprint": ctx.index_fingerprint,
        }
        if ctx.remote:
            doc |= ctx.health.snapshot()
            doc["window"] = ctx.window.snapshot()
            doc["spend"] = ctx.spend.snapshot()
        else:
            doc["mode"] = "offline"
        if isinstance(ctx.retriever, KnowledgeIndex):
            doc["passages"] = len(ctx.retriever)
        return doc
