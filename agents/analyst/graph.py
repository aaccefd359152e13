"""The analyst graph, run once per fetched batch of intents.

    START -> retrieve -> assess -> guard -> END

- retrieve: a few retrieval queries per intent (order, rationale, trading state), all
  embedded in one batched call, merged round robin into the intent's top passages;
- assess: the chat model reviews every intent (`abatch`; a remote model in chunks of bounded
  concurrency within a time budget); skipped while the provider's circuit is open or its token
  budget is spent;
- guard: validates each answer, falls back to the offline reviewer (degraded) when unusable,
  and lets hard findings (prompt injection, breached limits) only tighten the answer.

The runtime dependencies (index, model, provider health) come in the `AnalystContext`.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from agents.analyst import metrics
from agents.analyst.case import ReviewCase, retrieval_queries
from agents.analyst.guard import PROVIDER_TIMEOUT, Draft, Judgement, Skipped, judge
from agents.analyst.health import ProviderHealth
from agents.analyst.prompt import render_messages
from agents.analyst.reviewer import OfflineReviewer
from contracts import Analysis
from contracts import topology as t
from knowledge import Hit

MAX_CONCURRENCY = 32
"""Remote calls in flight at once within one batch."""
ASSESS_BUDGET_S = t.consumer("analyst").ack_wait_s / 3
"""Remote calls start only this long into a batch: with one call's timeout after it, the batch
is settled well within the consumer's ack wait (60 s), so it is not redelivered meanwhile."""


class Retriever(Protocol):
    """What the graph needs from the knowledge index."""

    def search(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]]: ...

    def cached(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]] | None:
        """`search`'s answer when every query is cached, else None (no model call)."""
        ...


@dataclass(frozen=True)
class AnalystContext:
    """Runtime dependencies of one analyst."""

    retriever: Retriever
    model: Runnable[LanguageModelInput, BaseMessage]
    label: str
    """`Analysis.model` of a usable answer, e.g. `openai:gpt-4o-mini`."""
    provider: str
    remote: bool
    reviewer: OfflineReviewer
    health: ProviderHealth
    top_k: int = 4
    timeout_s: float = 20.0
    max_concurrency: int = MAX_CONCURRENCY
    assess_budget_s: float = ASSESS_BUDGET_S
    """No new remote calls start after this long into a batch."""


@dataclass
class InputState:
    """The batch to review."""

    cases: Sequence[ReviewCase] = field(default_factory=list)


@dataclass
class State(InputState):
    """Everything the nodes produce, one entry per case, in case order."""

    hits: Annotated[list[list[Hit]], operator.add] = field(default_factory=list)
    drafts: Annotated[list[Draft], operator.add] = field(default_factory=list)
    judgements: Annotated[list[Judgement], operator.add] = field(default_factory=list)
    analyses: Annotated[list[Analysis], operator.add] = field(default_factory=list)


@dataclass
class OutputState:
    """What a run returns."""

    analyses: list[Analysis] = field(default_factory=list)
    judgements: list[Judgement] = field(default_factory=list)


def merge_hits(ranked: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """Take the best passages of several queries in turn (round robin), without repeats."""
    merged: dict[str, Hit] = {}
    for rank in range(max((len(r) for r in ranked), default=0)):
        for hits in ranked:
            if rank < len(hits) and hits[rank].ref not in merged and len(merged) < k:
                merged[hits[rank].ref] = hits[rank]
    return list(merged.values())


async def retrieve_passages(state: State, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Find the policy passages for every intent with one batched embedding call."""
    started = time.perf_counter()
    ctx = runtime.context
    per_case = [retrieval_queries(case) for case in state.cases]
    flat = [query for queries in per_case for query in queries]
    # Repeated queries come from the index's cache on the loop; only new ones need the
    # embedding model, in a thread (a thread round trip costs more than the cached lookup).
    ready = ctx.retriever.cached(flat, ctx.top_k)
    if ready is None:
        ready = await asyncio.to_thread(ctx.retriever.search, flat, ctx.top_k)
    found = iter(ready)
    hits = [merge_hits([next(found) for _ in queries], ctx.top_k) for queries in per_case]
    metrics.SECONDS.labels(stage="retrieve").observe(time.perf_counter() - started)
    return {"hits": hits}


async def assess_intents(state: State, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Ask the chat model to review every intent of the batch."""
    started = time.perf_counter()
    ctx = runtime.context
    skip = ctx.health.skip_reason() if ctx.remote else None
    prompts: list[LanguageModelInput] = [
        render_messages(case, hits) for case, hits in zip(state.cases, state.hits, strict=True)
    ]
    drafts: list[Draft]
    if skip is not None:
        drafts = [Skipped(skip)] * len(prompts)
    elif isinstance(ctx.model, OfflineReviewer):
        # The offline reviewer is pure and local: answer each prompt directly rather than
        # through LangChain's per-call run machinery (callbacks, tracing config), which cost
        # more than the review itself. Same prompt in, same answer out.
        drafts = [_offline_draft(ctx.model, prompt) for prompt in prompts]
    elif not ctx.remote:
        drafts = list(await ctx.model.abatch(prompts, return_exceptions=True))
    else:
        drafts = await _assess_remote(prompts, ctx)
    metrics.SECONDS.labels(stage="assess").observe(time.perf_counter() - started)
    return {"drafts": drafts}


def _offline_draft(model: OfflineReviewer, prompt: LanguageModelInput) -> Draft:
    try:
        if not isinstance(prompt, list):
            raise TypeError(f"a rendered prompt is a list of messages, not {type(prompt)}")
        return model.answer(prompt).generations[0].message
    except Exception as exc:  # as abatch(return_exceptions=True) would report it
        return exc


async def _assess_remote(prompts: Sequence[LanguageModelInput], ctx: AnalystContext) -> list[Draft]:
    # Chunks of `max_concurrency` calls, each bounded by the client's timeout_s; chunks that
    # would start after the batch budget are not sent, so a slow provider cannot hold a batch
    # past its ack wait (they degrade with `provider_timeout`).
    loop = asyncio.get_running_loop()
    budget_ends = loop.time() + ctx.assess_budget_s
    config: RunnableConfig = {"max_concurrency": ctx.max_concurrency}
    drafts: list[Draft] = []
    for start in range(0, len(prompts), ctx.max_concurrency):
        chunk = list(prompts[start : start + ctx.max_concurrency])
        if loop.time() >= budget_ends:
            drafts.extend([Skipped(PROVIDER_TIMEOUT)] * len(chunk))
            continue
        try:
            answers = await asyncio.wait_for(
                ctx.model.abatch(chunk, config, return_exceptions=True), ctx.timeout_s + 5.0
            )
            drafts.extend(answers)
        except TimeoutError as exc:  # a layer ignored the client timeout
            drafts.extend([exc] * len(chunk))
    return drafts


async def guard_analyses(state: State, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Validate every answer; degrade to the offline reviewer where one is unusable."""
    started = time.perf_counter()
    ctx = runtime.context
    judgements = [
        judge(case, hits, draft, label=ctx.label, remote=ctx.remote, reviewer=ctx.reviewer)
        for case, hits, draft in zip(state.cases, state.hits, state.drafts, strict=True)
    ]
    _account(judgements, ctx)
    metrics.SECONDS.labels(stage="guard").observe(time.perf_counter() - started)
    return {"judgements": judgements, "analyses": [j.analysis for j in judgements]}


def _account(judgements: Sequence[Judgement], ctx: AnalystContext) -> None:
    last_reason: str | None = None
    for j in judgements:
        metrics.CALLS.labels(provider=ctx.provider, outcome=j.outcome).inc()
        if j.degraded_reason is not None:
            metrics.DEGRADED.labels(reason=j.degraded_reason).inc()
            last_reason = j.degraded_reason
        if j.analysis.injection_flagged:
            metrics.INJECTIONS.inc()
        if j.input_tokens or j.output_tokens:
            metrics.TOKENS.labels(provider=ctx.provider, kind="input").inc(j.input_tokens)
            metrics.TOKENS.labels(provider=ctx.provider, kind="output").inc(j.output_tokens)
            ctx.health.add_tokens(j.input_tokens + j.output_tokens)
        if ctx.remote and j.outcome in ("ok", "timeout", "error"):
            ctx.health.record_call(j.outcome == "ok")
    if judgements:
        ctx.health.last_degraded_reason = last_reason


def build_graph() -> CompiledStateGraph[State, AnalystContext, InputState, OutputState]:
    """Compile `START -> retrieve -> assess -> guard -> END`."""
    builder = StateGraph(
        State, context_schema=AnalystContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("retrieve", retrieve_passages)
    builder.add_node("assess", assess_intents)
    builder.add_node("guard", guard_analyses)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "assess")
    builder.add_edge("assess", "guard")
    builder.add_edge("guard", END)
    return builder.compile(name="analyst")


graph = build_graph()
