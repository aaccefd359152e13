"""The analyst's working parts in one place: index, chat model, provider health, the graph."""

from __future__ import annotations

from collections.abc import Sequence
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
from agents.settings import Settings
from contracts import Analysis
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex, default_cache_dir


@dataclass
class AnalystEngine:
    """Reviews batches of cases through the graph."""

    context: AnalystContext

    @classmethod
    def create(cls, settings: AnalystSettings, retriever: Retriever) -> AnalystEngine:
        """Build the engine for `settings` over an already loaded retriever."""
        choice = build_chat_model(settings)
        context = AnalystContext(
            retriever=retriever,
            model=choice.model,
            label=choice.label(),
            provider=str(choice.provider),
            remote=choice.remote,
            reviewer=OfflineReviewer(),
            health=ProviderHealth(max_tokens_per_day=settings.max_tokens_per_day),
            top_k=settings.top_k,
            timeout_s=settings.timeout_s,
        )
        return cls(context)

    @classmethod
    def load(
        cls, settings: Settings, docs_dir: Path = DEFAULT_DOCS_DIR, cache_dir: Path | None = None
    ) -> AnalystEngine:
        """Load the embedding model and the index (blocking: run it in a thread)."""
        index = KnowledgeIndex.open(cache_dir or default_cache_dir(settings.data_dir), docs_dir)
        index.warm()
        return cls.create(settings.analyst, index)

    async def review(self, cases: Sequence[ReviewCase]) -> list[Judgement]:
        """Review a batch; one judgement per case, in order."""
        if not cases:
            return []
        result = await graph.ainvoke(InputState(cases=list(cases)), context=self.context)
        judgements: list[Judgement] = result["judgements"]
        return judgements

    async def analyze(self, cases: Sequence[ReviewCase]) -> list[Analysis]:
        """Review a batch; one analysis per case, in order."""
        return [j.analysis for j in await self.review(cases)]

    def status(self) -> dict[str, Any]:
        """Return the provider's state for `/status`."""
        ctx = self.context
        doc: dict[str, Any] = {"provider": ctx.provider, "model": ctx.label}
        if ctx.remote:
            doc |= ctx.health.snapshot()
        else:
            doc["mode"] = "offline"
        if isinstance(ctx.retriever, KnowledgeIndex):
            doc["passages"] = len(ctx.retriever)
        return doc
