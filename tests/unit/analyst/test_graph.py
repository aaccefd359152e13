"""The analyst graph over whole batches: retrieve -> assess -> guard."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from prometheus_client import REGISTRY

from agents.analyst.case import ReviewCase
from agents.analyst.config import AnalystSettings, ModelPrice
from agents.analyst.engine import AnalystEngine
from agents.analyst.graph import AnalystContext, graph, merge_hits
from agents.analyst.health import ProviderHealth
from agents.analyst.prompt import parse_review_prompt
from agents.analyst.reviewer import OfflineReviewer
from agents.analyst.spend import Spend
from agents.analyst.throttle import ThrottlePolicy
from agents.analyst.window import CallWindow
from contracts import Recommendation, TradingState
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from tests.support.analyst import INJECTION, hits, make_case
from tests.support.knowledge import HashEncoder


class Throttled(Exception):
    """What openai raises for a 429: a status code and the response's headers."""

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, retry_after: str = "0") -> None:
        super().__init__("Error code: 429 - rate limited")
        self.response = SimpleNamespace(headers={"retry-after": retry_after})


class ScriptedModel(BaseChatModel):
    """A remote model stand-in whose behaviour is chosen by the intent's strategy name."""

    calls: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    throttles_left: int = 0
    """Answer this many calls (of any intent) with a 429 first."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer(messages)
        finally:
            self.in_flight -= 1

    async def _answer(self, messages: list[BaseMessage]) -> ChatResult:
        case, passages = parse_review_prompt(messages)
        behaviour = case.intent.strategy or "ok"
        if behaviour == "throttled" or self.throttles_left > 0:
            self.throttles_left -= 1
            raise Throttled()
        if behaviour == "timeout":
            raise TimeoutError("no answer in time")
        if behaviour.startswith("slow"):
            await asyncio.sleep(float(behaviour.removeprefix("slow") or 0.2))
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


def scripted_engine(
    index: KnowledgeIndex, model: ScriptedModel, calls: int = 8, **overrides: Any
) -> AnalystEngine:
    return AnalystEngine(
        AnalystContext(
            retriever=index,
            model=model,
            label="openai_compatible:scripted",
            provider="openai_compatible",
            remote=True,
            reviewer=OfflineReviewer(),
            health=overrides.pop("health", ProviderHealth(max_tokens_per_day=1_000_000)),
            window=CallWindow(calls, latency_s=1.0),
            throttle=ThrottlePolicy(retries=3, max_wait_s=5.0, rand=lambda: 0.0),
            **overrides,
        )
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_graph_reviews_a_batch_locally_or_each_intent_remotely() -> None:
    edges = {(e.source, e.target) for e in graph.get_graph().edges}

    assert edges == {
        ("__start__", "retrieve"),
        ("retrieve", "assess"),
        ("assess", "guard"),
        ("guard", "__end__"),
        ("retrieve", "review"),
        ("review", "__end__"),
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
        "tradeops_analyst_tokens_total",
        provider="openai_compatible",
        model="scripted",
        kind="input",
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
        metric(
            "tradeops_analyst_tokens_total",
            provider="openai_compatible",
            model="scripted",
            kind="input",
        )
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


async def test_a_slow_call_holds_only_its_own_intent(index: KnowledgeIndex) -> None:
    engine = scripted_engine(index, ScriptedModel())
    order: list[int] = []

    async for reviewed in engine.stream([make_case(strategy=s) for s in ("slow0.5", "ok", "ok")]):
        order.extend(i for i, _ in reviewed)

    assert order == [1, 2, 0]


async def test_calls_wait_for_a_slot_in_the_window_and_never_degrade_for_it(
    index: KnowledgeIndex,
) -> None:
    model = ScriptedModel()
    engine = scripted_engine(index, model, calls=3)

    judgements = await engine.review([make_case(strategy="slow0.05") for _ in range(12)])

    assert model.most_in_flight == 3 and model.calls == 12
    assert [j.degraded_reason for j in judgements] == [None] * 12


async def test_a_throttled_call_is_retried_halves_the_window_and_never_opens_the_circuit(
    index: KnowledgeIndex,
) -> None:
    model = ScriptedModel(throttles_left=6)  # more 429s than the circuit's threshold of 5
    engine = scripted_engine(index, model, calls=8)
    throttled = metric("tradeops_analyst_throttled_total", provider="openai_compatible")

    judgements = await engine.review([make_case(strategy="ok") for _ in range(4)])

    assert [j.degraded_reason for j in judgements] == [None] * 4
    assert metric("tradeops_analyst_throttled_total", provider="openai_compatible") == (
        throttled + 6
    )
    ctx = engine.context
    assert ctx.health.consecutive_failures == 0 and ctx.health.skip_reason() is None
    assert ctx.window.throttled == 6 and ctx.window.round >= 1


async def test_a_call_throttled_past_its_retries_degrades_as_a_provider_error(
    index: KnowledgeIndex,
) -> None:
    engine = scripted_engine(index, ScriptedModel())

    (judgement,) = await engine.review([make_case(strategy="throttled")])

    assert judgement.degraded_reason == "provider_error" and judgement.outcome == "throttled"
    assert "throttled 4 times" in judgement.analysis.rationale
    assert engine.context.health.consecutive_failures == 0


async def test_once_the_budget_is_spent_the_provider_is_not_called(index: KnowledgeIndex) -> None:
    model = ScriptedModel()
    health = ProviderHealth(max_tokens_per_day=100)
    engine = scripted_engine(index, model, calls=1, health=health)

    judgements = await engine.review([make_case(strategy="ok") for _ in range(3)])

    assert model.calls == 1  # its 120 tokens spent the budget of 100
    assert [j.degraded_reason for j in judgements] == [None, "budget_exhausted", "budget_exhausted"]
    assert all(j.analysis.degraded for j in judgements[1:])


async def test_tokens_and_cost_are_counted_per_model(index: KnowledgeIndex) -> None:
    prices = {"scripted": ModelPrice(input_per_1k_usd=Decimal(1), output_per_1k_usd=Decimal(2))}
    engine = scripted_engine(index, ScriptedModel(), spend=Spend(prices))
    cost = metric("tradeops_analyst_cost_usd_total", provider="openai_compatible", model="scripted")

    await engine.review([make_case(strategy="ok"), make_case(strategy="ok")])

    spent = engine.status()["spend"]
    assert spent["models"]["scripted"] == {
        "calls": 2,
        "input_tokens": 200,
        "output_tokens": 40,
        "cost_usd": "0.280000",  # 2 x (100 x 1 + 20 x 2) / 1000
    }
    assert metric(
        "tradeops_analyst_cost_usd_total", provider="openai_compatible", model="scripted"
    ) == pytest.approx(cost + 0.28)


def test_merge_takes_each_querys_best_in_turn_without_repeats() -> None:
    a, b, c, d = (
        "risk-limits-policy.md#Rate limit",
        "risk-limits-policy.md#Leverage limit",
        "kill-switch-runbook.md#Trading states",
        "risk-limits-policy.md#Position limit",
    )

    merged = merge_hits([hits(a, b, d), hits(a, c)], k=3)

    assert [h.ref for h in merged] == [a, b, c]
