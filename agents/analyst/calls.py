"""One review's call of a remote model: a slot in the window, the circuit, throttling retries.

    skip? (budget spent, circuit open) -> slot -> call (timeout_s) -> answered / failed
                                                                   -> throttled: give the slot
                                                                      back, wait, call again

A review waits for a free slot as long as it takes: scheduling never degrades it (the runtime
keeps its message with in-progress acks meanwhile, and fetches no more than the window can
review). The provider is skipped only when the budget is spent or the circuit is open, checked
again once the slot is taken. A throttled call (429) halves the window and is retried after
the provider's `Retry-After`; it counts neither as a success nor as a failure of the provider.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from agents.analyst import metrics
from agents.analyst.guard import Draft, Skipped
from agents.analyst.health import ProviderHealth
from agents.analyst.throttle import ThrottledOut, ThrottlePolicy, is_throttle
from agents.analyst.window import CallWindow

TIMEOUT_GRACE_S = 5.0
"""Beyond the client's own timeout, before a call is abandoned (a layer ignored it)."""


@dataclass(frozen=True)
class CallPlan:
    """Everything one remote call needs."""

    model: Runnable[LanguageModelInput, BaseMessage]
    provider: str
    health: ProviderHealth
    window: CallWindow
    throttle: ThrottlePolicy
    timeout_s: float


async def call_model(plan: CallPlan, prompt: LanguageModelInput) -> Draft:
    """Return the model's answer to `prompt`, the error it ended in, or why it was skipped."""
    loop = asyncio.get_running_loop()
    throttles = 0
    while True:
        reason = plan.health.skip_reason()
        if reason is not None:
            return Skipped(reason)
        async with plan.window.slot() as taken_in:
            reason = plan.health.skip_reason()  # the circuit may have opened while queued
            if reason is not None:
                return Skipped(reason)
            probe = plan.health.start_call()
            started = loop.time()
            try:
                answer = await asyncio.wait_for(
                    plan.model.ainvoke(prompt), plan.timeout_s + TIMEOUT_GRACE_S
                )
            except asyncio.CancelledError:
                if probe:
                    plan.health.end_probe()
                raise
            except Exception as exc:
                if not is_throttle(exc):
                    plan.window.failed(loop.time() - started)
                    plan.health.record_call(ok=False)
                    return exc
                throttles += 1
                plan.window.throttle(taken_in)
                metrics.THROTTLED.labels(provider=plan.provider).inc()
                if probe:
                    plan.health.end_probe()
                wait_s = plan.throttle.wait_s(exc, throttles)
                if wait_s is None:
                    return ThrottledOut(f"throttled {throttles} times; the last 429: {exc}")
            else:
                plan.window.answered(loop.time() - started)
                plan.health.record_call(ok=True)
                return answer
        await asyncio.sleep(wait_s)  # the slot is free meanwhile
