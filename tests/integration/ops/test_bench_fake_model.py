"""The benchmark's fake remote model over real HTTP: completions the analyst uses as they are, and
429 with `Retry-After` for a call over its cap."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.engine import AnalystEngine
from agents.analyst.output import parse_output
from agents.analyst.prompt import render_messages
from contracts import Recommendation
from knowledge import Hit
from ops.bench.remote_model import FakeChatModel
from tests.support.analyst import APPROVE_REF, ORDER_SIZE_REF, hits, make_case

pytestmark = pytest.mark.integration

REFS = (APPROVE_REF, ORDER_SIZE_REF)
ROLES = {"system": "system", "human": "user"}


def review_request(model: str = "bench-model") -> dict[str, Any]:
    """A chat-completion request carrying the analyst's own review prompt."""
    messages = render_messages(make_case(), hits(*REFS))
    return {
        "model": model,
        "messages": [{"role": ROLES[m.type], "content": m.content} for m in messages],
        "response_format": {"type": "json_object"},
    }


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> aiohttp.ClientResponse:
    async with session.post(f"{url}/chat/completions", json=body) as resp:
        await resp.read()
        return resp


class FixedRetriever:
    """Two policy passages for every query, as the index would find them."""

    def search(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]]:
        return [hits(*REFS) for _ in queries]

    def cached(self, queries: Sequence[str], k: int = 4) -> list[list[Hit]] | None:
        return self.search(queries, k)


async def test_a_review_prompt_gets_a_completion_whose_content_the_analyst_parses() -> None:
    model = FakeChatModel(latency_s=0.05, jitter_s=0.0)
    async with (
        model.serving() as url,
        aiohttp.ClientSession() as session,
        session.post(f"{url}/chat/completions", json=review_request()) as resp,
    ):
        status, doc = resp.status, await resp.json()

    assert status == 200
    assert doc["object"] == "chat.completion" and doc["model"] == "bench-model"
    (choice,) = doc["choices"]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    review = parse_output(choice["message"]["content"], frozenset(REFS))
    assert review.recommendation is Recommendation.APPROVE
    assert review.citations == (APPROVE_REF,)
    assert doc["usage"]["total_tokens"] > doc["usage"]["prompt_tokens"] > 100
    assert (model.calls, model.answered, model.rate_limited) == (1, 1, 0)


async def test_the_analyst_engine_uses_its_answers_undegraded_one_call_each() -> None:
    model = FakeChatModel(latency_s=0.05, jitter_s=0.0)
    async with model.serving() as url:
        settings = AnalystSettings(
            provider=Provider.OPENAI_COMPATIBLE, base_url=url, model="bench-model", timeout_s=5.0
        )
        engine = AnalystEngine.create(settings, FixedRetriever())

        analyses = await engine.analyze([make_case(), make_case(), make_case()])

    assert [a.degraded for a in analyses] == [False] * 3
    assert {a.model for a in analyses} == {"openai_compatible:bench-model"}
    assert [a.recommendation for a in analyses] == [Recommendation.APPROVE] * 3
    assert model.calls == 3


async def test_a_call_over_the_cap_gets_429_with_retry_after_and_is_counted() -> None:
    model = FakeChatModel(latency_s=0.5, jitter_s=0.0, max_in_flight=2, retry_after_s=2)
    async with model.serving() as url, aiohttp.ClientSession() as session:
        first = [asyncio.create_task(post(session, url, review_request())) for _ in range(2)]
        await asyncio.sleep(0.2)  # both are being answered (for 0.5 s)
        assert model.in_flight == 2
        async with session.post(f"{url}/chat/completions", json=review_request()) as over:
            over_status, retry_after, error = (
                over.status, over.headers.get("Retry-After"), await over.json()
            )  # fmt: skip
        answered = [resp.status for resp in await asyncio.gather(*first)]
        async with session.post(f"{url}/chat/completions", json=review_request()) as after:
            after_status = after.status

    assert (over_status, retry_after) == (429, "2")
    assert error["error"]["code"] == "rate_limit_exceeded"
    assert answered == [200, 200]
    assert after_status == 200  # under the cap again once the first two were answered
    assert (model.calls, model.answered, model.rate_limited) == (4, 3, 1)
    assert model.peak_in_flight == 2


async def test_the_peak_in_flight_restarts_from_the_calls_in_flight_at_reset() -> None:
    model = FakeChatModel(latency_s=0.2, jitter_s=0.0)
    async with model.serving() as url, aiohttp.ClientSession() as session:
        await asyncio.gather(*(post(session, url, review_request()) for _ in range(3)))
        model.reset_peak()
        await post(session, url, review_request())

    assert model.peak_in_flight == 1
    assert model.counts().calls == 4


async def test_a_request_without_messages_is_refused_with_400() -> None:
    model = FakeChatModel(latency_s=0.0, jitter_s=0.0)
    async with model.serving() as url, aiohttp.ClientSession() as session:
        resp = await post(session, url, {"model": "bench-model"})

    assert resp.status == 400
