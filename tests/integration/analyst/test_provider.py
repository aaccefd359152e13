"""The analyst against a local OpenAI-compatible server: degraded reasons, 429s, the window."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.engine import AnalystEngine
from knowledge import KnowledgeIndex
from tests.support.analyst import FakeLLM, make_case

pytestmark = pytest.mark.integration

MODEL = "test-model"


def engine_for(llm: FakeLLM, index: KnowledgeIndex, **settings: object) -> AnalystEngine:
    config = AnalystSettings(
        provider=Provider.OPENAI_COMPATIBLE,
        base_url=llm.url,
        model=MODEL,
        api_key="test-key",
        timeout_s=5.0,
        **settings,  # type: ignore[arg-type]
    )
    return AnalystEngine.create(config, index)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_after_five_failed_calls_the_circuit_is_open_and_the_provider_not_called(
    llm: FakeLLM, knowledge_index: KnowledgeIndex
) -> None:
    llm.mode = "http500"
    engine = engine_for(llm, knowledge_index)
    failed = await engine.analyze([make_case() for _ in range(5)])
    llm.mode = "approve"

    (analysis,) = await engine.analyze([make_case()])

    assert {a.degraded_reason for a in failed} == {"provider_error"}
    assert analysis.degraded and analysis.degraded_reason == "circuit_open"
    assert analysis.rationale.startswith("[degraded: circuit_open")
    assert len(llm.requests) == 5


async def test_once_the_daily_budget_is_spent_reviews_degrade_with_reason_budget_exhausted(
    llm: FakeLLM, knowledge_index: KnowledgeIndex
) -> None:
    # One call, then the budget (900 tokens) is spent by its 970; the runbook's name for it.
    engine = engine_for(llm, knowledge_index, max_tokens_per_day=900, max_concurrency=1)

    first, second, third = await engine.analyze([make_case(), make_case(), make_case()])

    assert not first.degraded and first.model == f"openai_compatible:{MODEL}"
    assert (second.degraded_reason, third.degraded_reason) == ("budget_exhausted",) * 2
    assert second.model == "offline-reviewer"
    assert len(llm.requests) == 1
    assert engine.status()["skipping"] == "budget_exhausted"
    assert metric("tradeops_analyst_budget_used_tokens") == 970
    assert metric("tradeops_analyst_budget_tokens") == 900


async def test_429_with_retry_after_is_retried_narrows_the_window_and_never_opens_the_circuit(
    llm: FakeLLM, knowledge_index: KnowledgeIndex
) -> None:
    # The provider serves 2 calls at a time and throttles the rest, as a rate limit does.
    llm.max_concurrent, llm.retry_after, llm.delay_s = 2, "0.2", 0.1
    engine = engine_for(llm, knowledge_index, max_concurrency=8)
    throttled = metric("tradeops_analyst_throttled_total", provider="openai_compatible")

    analyses = await engine.analyze([make_case() for _ in range(12)])

    assert llm.throttled >= 5  # more 429s than the circuit's threshold
    assert all(not a.degraded for a in analyses)
    assert len(llm.requests) == 12 + llm.throttled
    assert (
        metric("tradeops_analyst_throttled_total", provider="openai_compatible")
        == throttled + llm.throttled
    )
    status = engine.status()
    assert status["mode"] == "normal" and status["consecutive_failures"] == 0
    assert status["window"]["throttled"] == llm.throttled
    assert engine.context.window.round >= 1  # the window was halved on the way


async def test_calls_go_out_as_a_sliding_window_not_in_chunks(
    llm: FakeLLM, knowledge_index: KnowledgeIndex
) -> None:
    llm.delay_s, llm.jitter_s = 0.3, 0.1
    engine = engine_for(llm, knowledge_index, max_concurrency=16)

    analyses = await engine.analyze([make_case() for _ in range(64)])

    assert all(not a.degraded for a in analyses)
    assert llm.most_in_flight == 16  # never more than the window, and the window kept full
    spend = engine.status()["spend"]["models"][MODEL]
    assert (spend["calls"], spend["input_tokens"], spend["cost_usd"]) == (64, 64 * 900, None)
