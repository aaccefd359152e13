r"""The analyst graph, run once per fetched batch of intents.

    START -> retrieve -> assess -> guard -> END        a local model: the batch in one pass
                     \-> review (one per intent) -> END     a remote model

- retrieve: a few retrieval queries per intent (order, rationale, trading state), all
  embedded in one batched call, merged round robin into the intent's top passages;
- assess (local model): the offline reviewer (or another local model) answers every intent;
- guard: validates each answer, falls back to the offline reviewer (degraded) when unusable,
  and lets hard findings (prompt injection, breached limits) only tighten the answer;
- review (remote model, one task per intent, `Send`): the intent's call in the shared window of
  calls (`calls.py`: a free slot, the circuit, the budget, throttling retries), then its guard.
  Each review's result is streamed as soon as it is there (`stream_mode="updates"`), so one slow
  call holds only its own intent, never the batch.

The runtime dependencies (index, model, provider health, the call window) come in the
`AnalystContext`.
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
from langchain_core.runnables import Runnable
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agents.analyst import metrics
from agents.analyst.calls import CallPlan, call_model
from agents.analyst.case import ReviewCase, retrieval_queries
from agents.analyst.guard import Draft, Judgement, Provenance, judge
from agents.analyst.health import ProviderHealth
from agents.analyst.prompt import PROMPT_VERSION, render_messages
from agents.analyst.reviewer import OfflineReviewer
from agents.analyst.spend import Spend
from agents.analyst.throttle import ThrottlePolicy
from agents.analyst.window import CallWindow
from knowledge import Hit

MAX_CONCURRENCY = 256
"""Remote calls in flight at once (the default of `[analyst] max_concurrency`)."""


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
    window: CallWindow = field(default_factory=lambda: CallWindow(MAX_CONCURRENCY, 20.0))
    """Remote calls in flight, shared by every batch."""
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    spend: Spend = field(default_factory=lambda: Spend({}))
    prompt_version: str = PROMPT_VERSION
    index_fingerprint: str | None = None

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.provider, self.prompt_version, self.index_fingerprint)

    @property
    def calls(self) -> CallPlan:
        return CallPlan(
            self.model, self.provider, self.health, self.window, self.throttle, self.timeout_s
        )


@dataclass
class InputState:
    """The batch to review."""

    cases: Sequence[ReviewCase] = field(default_factory=list)


@dataclass
class State(InputState):
    """Everything the nodes produce: one entry per case, in case order (`reviewed`: by case
    index, in the order the reviews finished)."""

    hits: Annotated[list[list[Hit]], operator.add] = field(default_factory=list)
    drafts: Annotated[list[Draft], operator.add] = field(default_factory=list)
    judgements: Annotated[list[Judgement], operator.add] = field(default_factory=list)
    reviewed: Annotated[list[tuple[int, Judgement]], operator.add] = field(default_factory=list)


@dataclass
class ReviewTask:
    """One intent's review with a remote model: the input of a `review` task."""

    index: int
    case: ReviewCase
    hits: list[Hit]


@dataclass
class OutputState:
    """What a run returns: `judgements` from the batch path, `reviewed` from the review tasks."""

    judgements: list[Judgement] = field(default_factory=list)
    reviewed: list[tuple[int, Judgement]] = field(default_factory=list)


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


def fan_out(state: State, runtime: Runtime[AnalystContext]) -> str | list[Send]:
    """A remote model reviews each intent in a task of its own; a local one the whole batch."""
    if not runtime.context.remote:
        return "assess"
    return [
        Send("review", ReviewTask(i, case, hits))
        for i, (case, hits) in enumerate(zip(state.cases, state.hits, strict=True))
    ]


async def assess_intents(state: State, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Ask a local chat model to review every intent of the batch."""
    started = time.perf_counter()
    ctx = runtime.context
    prompts: list[LanguageModelInput] = [
        render_messages(case, hits) for case, hits in zip(state.cases, state.hits, strict=True)
    ]
    drafts: list[Draft]
    if isinstance(ctx.model, OfflineReviewer):
        # The offline reviewer is pure and local: answer each prompt directly rather than
        # through LangChain's per-call run machinery (callbacks, tracing config), which cost
        # more than the review itself. Same prompt in, same answer out.
        drafts = [_offline_draft(ctx.model, prompt) for prompt in prompts]
    else:
        drafts = list(await ctx.model.abatch(prompts, return_exceptions=True))
    metrics.SECONDS.labels(stage="assess").observe(time.perf_counter() - started)
    return {"drafts": drafts}


def _offline_draft(model: OfflineReviewer, prompt: LanguageModelInput) -> Draft:
    try:
        if not isinstance(prompt, list):
            raise TypeError(f"a rendered prompt is a list of messages, not {type(prompt)}")
        return model.answer(prompt).generations[0].message
    except Exception as exc:  # as abatch(return_exceptions=True) would report it
        return exc


async def guard_analyses(state: State, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Validate every answer; degrade to the offline reviewer where one is unusable."""
    started = time.perf_counter()
    ctx = runtime.context
    judgements = [
        judge(
            case,
            hits,
            draft,
            label=ctx.label,
            remote=ctx.remote,
            reviewer=ctx.reviewer,
            provenance=ctx.provenance,
        )
        for case, hits, draft in zip(state.cases, state.hits, state.drafts, strict=True)
    ]
    for judgement in judgements:
        _account(judgement, ctx)
    metrics.SECONDS.labels(stage="guard").observe(time.perf_counter() - started)
    return {"judgements": judgements}


async def review_intent(state: ReviewTask, runtime: Runtime[AnalystContext]) -> dict[str, Any]:
    """Call the remote model for one intent (in the shared window), then guard its answer."""
    started = time.perf_counter()
    ctx = runtime.context
    draft: Draft
    try:
        draft = await call_model(ctx.calls, render_messages(state.case, state.hits))
    except Exception as exc:  # never fail the batch's other reviews: this one degrades
        draft = exc
    judgement = judge(
        state.case,
        state.hits,
        draft,
        label=ctx.label,
        remote=ctx.remote,
        reviewer=ctx.reviewer,
        provenance=ctx.provenance,
    )
    _account(judgement, ctx)
    metrics.SECONDS.labels(stage="review").observe(time.perf_counter() - started)
    return {"reviewed": [(state.index, judgement)]}


def _account(j: Judgement, ctx: AnalystContext) -> None:
    metrics.CALLS.labels(provider=ctx.provider, outcome=j.outcome).inc()
    if j.degraded_reason is not None:
        metrics.DEGRADED.labels(reason=j.degraded_reason).inc()
    if j.analysis.injection_flagged:
        metrics.INJECTIONS.inc()
    if j.input_tokens or j.output_tokens:
        model = j.served_model or ctx.label
        metrics.TOKENS.labels(provider=ctx.provider, model=model, kind="input").inc(j.input_tokens)
        metrics.TOKENS.labels(provider=ctx.provider, model=model, kind="output").inc(
            j.output_tokens
        )
        cost = ctx.spend.record(model, j.input_tokens, j.output_tokens)
        if cost is not None:
            metrics.COST.labels(provider=ctx.provider, model=model).inc(float(cost))
        ctx.health.add_tokens(j.input_tokens + j.output_tokens)
    ctx.health.last_degraded_reason = j.degraded_reason


def build_graph() -> CompiledStateGraph[State, AnalystContext, InputState, OutputState]:
    """Compile the graph of the module docstring."""
    builder = StateGraph(
        State, context_schema=AnalystContext, input_schema=InputState, output_schema=OutputState
    )
    builder.add_node("retrieve", retrieve_passages)
    builder.add_node("assess", assess_intents)
    builder.add_node("guard", guard_analyses)
    builder.add_node("review", review_intent, input_schema=ReviewTask)
    builder.add_edge(START, "retrieve")
    builder.add_conditional_edges("retrieve", fan_out, ["assess", "review"])
    builder.add_edge("assess", "guard")
    builder.add_edge("guard", END)
    builder.add_edge("review", END)
    return builder.compile(name="analyst")


graph = build_graph()
