"""A stand-in for a remote chat model: an OpenAI-compatible `POST /v1/chat/completions`.

It answers as a slow hosted model would: after 1.0 s +- 0.3 s (uniform, from a seeded random
generator) with a valid chat completion whose content is the JSON review the analyst asks for
(`agents/analyst/output.py`): `approve` at 0.85, citing the first policy passage of the prompt.
With `max_in_flight` set, a call arriving while that many are being answered gets `429 Too Many
Requests` at once, with a `Retry-After` header and OpenAI's error body, as a provider's rate
limit does. It counts what a benchmark reports: calls, answers, 429s, and the most calls it was
answering at once (`peak_in_flight`, since the last `reset_peak()`).

The settings can be changed while it serves (a benchmark caps it for one run, then lifts it).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from agents.analyst.prompt import BEGIN_PASSAGES
from ops.stack.natsd import free_port

LATENCY_S: Final = 1.0
JITTER_S: Final = 0.3
SEED: Final = 7
CHARS_PER_TOKEN: Final = 4
"""For the `usage` figures: about four characters of English per token."""


@dataclass(frozen=True)
class ModelCounts:
    """The fake model's counters at one moment."""

    calls: int
    """Requests received, answered or not."""
    answered: int
    rate_limited: int
    """Requests answered 429 (over `max_in_flight`)."""
    in_flight: int
    peak_in_flight: int

    def since(self, earlier: ModelCounts) -> ModelCounts:
        """The counts between `earlier` and now (in-flight figures as now)."""
        return ModelCounts(
            calls=self.calls - earlier.calls,
            answered=self.answered - earlier.answered,
            rate_limited=self.rate_limited - earlier.rate_limited,
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
        )


def cited_refs(body: dict[str, Any]) -> list[str]:
    """The passage refs of a review prompt's policy block (last message), in prompt order."""
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages else None
    if not isinstance(content, str):
        return []
    lines = content.split("\n")
    try:
        passages = json.loads(lines[lines.index(BEGIN_PASSAGES) + 1])
        return [str(p["ref"]) for p in passages]
    except (ValueError, IndexError, KeyError, TypeError):
        return []


def review_content(refs: list[str]) -> str:
    """The answer's content: the JSON object `agents.analyst.output.parse_output` accepts."""
    return json.dumps(
        {
            "recommendation": "approve",
            "confidence": 0.85,
            "rationale": "Ordinary order well inside its limits, with a specific rationale.",
            "citations": refs[:1],
            "flags": [],
        }
    )


def completion(body: dict[str, Any], content: str, number: int) -> dict[str, Any]:
    """An OpenAI `chat.completion` object answering `body` with `content`."""
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
    prompt_tokens = max(1, prompt_chars // CHARS_PER_TOKEN)
    completion_tokens = max(1, len(content) // CHARS_PER_TOKEN)
    return {
        "id": f"chatcmpl-bench-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "bench-model")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


RATE_LIMITED_BODY: Final = {
    "error": {
        "message": "Rate limit reached: too many requests in flight. Retry after the given delay.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


@dataclass
class FakeChatModel:
    """The server's behaviour and counters; `serving()` runs it on a free loopback port."""

    latency_s: float = LATENCY_S
    jitter_s: float = JITTER_S
    seed: int = SEED
    max_in_flight: int | None = None
    """Answer 429 to a call arriving while this many are in flight; None: no cap."""
    retry_after_s: int = 1
    """The `Retry-After` header of a 429, whole seconds."""
    calls: int = 0
    answered: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def counts(self) -> ModelCounts:
        return ModelCounts(
            self.calls, self.answered, self.rate_limited, self.in_flight, self.peak_in_flight
        )

    def reset_peak(self) -> None:
        """Start a new window for `peak_in_flight` (from the calls in flight now)."""
        self.peak_in_flight = self.in_flight

    def delay_s(self) -> float:
        """The next answer's delay: uniform in latency +- jitter, never negative."""
        low, high = self.latency_s - self.jitter_s, self.latency_s + self.jitter_s
        return max(0.0, self._rng.uniform(low, high))

    async def completions(self, request: web.Request) -> web.Response:
        self.calls += 1
        number = self.calls
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return web.json_response(
                {"error": {"message": "expected a JSON body with messages", "type": "invalid"}},
                status=400,
            )
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            self.rate_limited += 1
            return web.json_response(
                RATE_LIMITED_BODY, status=429, headers={"Retry-After": str(self.retry_after_s)}
            )
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s())
        finally:
            self.in_flight -= 1
        self.answered += 1
        return web.json_response(completion(body, review_content(cited_refs(body)), number))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.completions)
        return app

    @asynccontextmanager
    async def serving(self, host: str = "127.0.0.1") -> AsyncIterator[str]:
        """Serve on a free port of `host`; yields the base URL (`http://host:port/v1`)."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        port = free_port()
        try:
            await web.TCPSite(runner, host, port).start()
            yield f"http://{host}:{port}/v1"
        finally:
            await runner.cleanup()
