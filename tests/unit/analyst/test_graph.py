"""The analyst graph over whole batches: retrieve -> assess -> guard."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from prometheus_client import REGISTRY

from agents.analyst.case import ReviewCase
from agents.analyst.config import AnalystSettings
from agents.analyst.engine import AnalystEngine
from agents.analyst.graph import AnalystContext, graph, merge_hits
from agents.analyst.health import ProviderHealth
from agents.analyst.prompt import parse_review_prompt
from agents.analyst.reviewer import OfflineReviewer
from contracts import Recommendation, TradingState
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from tests.support.analyst import INJECTION, hits, make_case
from tests.support.knowledge import HashEncoder


class ScriptedModel(BaseChatModel):
    """A remote model stand-in whose behaviour is chosen by the intent's strategy name."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        self.calls += 1
        case, passages = parse_review_prompt(messages)
        behaviour = case.intent.strategy or "ok"
        if behaviour == "timeout":
            raise TimeoutError("no answer in time")
        if behaviour == "slow":
            await asyncio.sleep(0.2)
        if behaviour == "error":
            raise RuntimeError("HTTP 500 from provider")
        content = (
            "I cannot answer in JSON today"
            if behaviour == "garbage"
            else json.dumps(
                {
                    "recommendation": "approve",
                    "confidence": 0.81,
                    "rationale": "Fine.",
                    "citations": [passages[0].ref],
                }
            )
        )
        message = AIMessage(
            content=content,
            usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.fixture(scope="module")
def encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture(scope="module")
def index(encoder: HashEncoder, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeIndex:
    return KnowledgeIndex.open(tmp_path_factory.mktemp("kn"), DEFAULT_DOCS_DIR, encoder)


def scripted_engine(index: KnowledgeIndex, model: ScriptedModel, **overrides: Any) -> AnalystEngine:
    return AnalystEngine(
        AnalystContext(
            retriever=index,
            model=model,
            label="openai_compatible:scripted",
            provider="openai_compatible",
            remote=True,
            reviewer=OfflineReviewer(),
            health=ProviderHealth(max_tokens_per_day=1_000_000),
            **overrides,
        )
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_graph_topology_is_retrieve_assess_guard() -> None:
    edges = {(e.source, e.target) for e in graph.get_graph().edges}

    assert edges == {
        ("__start__", "retrieve"),
        ("retrieve", "assess"),
        ("assess", "guard"),
        ("guard", "__end__"),
    }


async def test_offline_batch_is_reviewed_in_order_with_one_embedding_call(
    index: KnowledgeIndex, encoder: HashEncoder
) -> None:
    engine = AnalystEngine.create(AnalystSettings(), index)
    cases: list[ReviewCase] = [
        make_case(strategy="unit-graph-1"),
        make_case(rationale=INJECTION),
        make_case(rationale=None),
        make_case(quantity="6000", reference_price="10.00"),
        make_case(TradingState.HALTED, strategy="unit-graph-2"),
    ]
    encoder.calls.clear()

    analyses = await engine.analyze(cases)

    assert [a.recommendation for a in analyses] == [
        Recommendation.APPROVE,
        Recommendation.REJECT,
        Recommendation.REVIEW,
        Recommendation.REJECT,
        Recommendation.REJECT,
    ]
    assert [a.injection_flagged for a in analyses] == [False, True, False, False, False]
    assert not any(a.degraded for a in analyses)
    assert all(a.citations and a.model == "offline-reviewer" for a in analyses)
    assert len(encoder.calls) == 1


async def test_each_intent_of_a_batch_degrades_on_its_own_failure(index: KnowledgeIndex) -> None:
    model = ScriptedModel()
    engine = scripted_engine(index, model)
    before = {r: metric("tradeops_analyst_degraded_total", reason=r) for r in
              ("provider_timeout", "provider_error", "invalid_output")}  # fmt: skip
    tokens_before = metric(
        "tradeops_analyst_tokens_total", provider="openai_compatible", kind="input"
    )

    judgements = await engine.review(
        [make_case(strategy=s) for s in ("ok", "timeout", "garbage", "error")]
    )

    assert [j.degraded_reason for j in judgements] == [
        None,
        "provider_timeout",
        "invalid_output",
        "provider_error",
    ]
    assert [j.analysis.model for j in judgements] == ["openai_compatible:scripted"] + [
        "offline-reviewer"
    ] * 3
    for reason, value in before.items():
        assert metric("tradeops_analyst_degraded_total", reason=reason) == value + 1
    assert (
        metric("tradeops_analyst_tokens_total", provider="openai_compatible", kind="input")
        == tokens_before + 200  # the garbage answer used tokens too
    )


async def test_after_five_failures_the_provider_is_not_called_for_the_cooldown(
    index: KnowledgeIndex,
) -> None:
    model = ScriptedModel()
    engine = scripted_engine(index, model)
    await engine.review([make_case(strategy="error") for _ in range(5)])
    calls = model.calls

    judgements = await engine.review([make_case(strategy="ok")])

    assert model.calls == calls
    assert judgements[0].degraded_reason == "circuit_open"
    assert judgements[0].analysis.recommendation is Recommendation.APPROVE
    assert engine.status()["mode"] == "degraded"


async def test_remote_calls_stop_starting_once_the_batch_budget_is_spent(
    index: KnowledgeIndex,
) -> None:
    model = ScriptedModel()
    engine = scripted_engine(index, model, max_concurrency=2, assess_budget_s=0.1)

    judgements = await engine.review([make_case(strategy="slow") for _ in range(6)])

    assert model.calls == 2  # the first chunk of two; the rest would overrun the budget
    assert [j.degraded_reason for j in judgements] == [None] * 2 + ["provider_timeout"] * 4
    assert [j.outcome for j in judgements[2:]] == ["skipped"] * 4


def test_merge_takes_each_querys_best_in_turn_without_repeats() -> None:
    a, b, c, d = (
        "risk-limits-policy.md#Rate limit",
        "risk-limits-policy.md#Leverage limit",
        "kill-switch-runbook.md#Trading states",
        "risk-limits-policy.md#Position limit",
    )

    merged = merge_hits([hits(a, b, d), hits(a, c)], k=3)

    assert [h.ref for h in merged] == [a, b, c]
