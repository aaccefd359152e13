"""The analyst agent: reviews accepted intents and publishes `intent.analyzed.<SYMBOL>`.

Consumes `intent.accepted.*` (durable `analyst`), runs the analyst graph over each fetched
batch, and emits one `IntentAnalyzed` per intent with a deterministic event id, each as soon as
its own review is done. With a remote model, batches overlap and the agent holds no more intents
than its window of calls can review within half the consumer's ack wait (at the latency it
observes); what it holds gets in-progress acks, so nothing is redelivered while being reviewed.
The model and the index load in a thread at start; until then the agent reports not ready and
naks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agents.analyst.case import case_for
from agents.analyst.engine import AnalystEngine
from agents.base import Agent, Worker
from agents.settings import Settings
from bus import Delivery, Emit, Rejected, Transient
from bus.handling import Pacing, Ready
from contracts import Analysis, Identity, IntentAccepted, IntentAnalyzed, parse
from contracts import subjects as s
from contracts import topology as t

log = logging.getLogger("tradeops.analyst")

NOT_LOADED = "model/index not loaded"


class Analyst(Agent):
    """LLM-assisted (or offline) advisory review of every accepted intent."""

    identity = Identity.ANALYST
    verify_inputs = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.engine: AnalystEngine | None = None
        self.consumer = t.consumer("analyst")
        """The consumer it reads (its ack wait paces the agent)."""

    async def open(self) -> None:
        """Load the embedding model, the index (built on first use) and the chat model."""
        self.engine = await asyncio.to_thread(AnalystEngine.load, self.settings)
        log.info("analyst ready: %s", self.engine.status())

    def workers(self) -> Sequence[Worker]:
        return [
            Worker(
                self.consumer,
                lambda msg: parse(IntentAccepted, msg.data),
                self.handle,
                self.pacing(),
            )
        ]

    def pacing(self) -> Pacing:
        """In-progress acks always; with a remote model, overlapping batches bounded by what
        the call window can review within half the ack wait."""
        ack_wait_s = self.consumer.ack_wait_s
        engine = self.engine
        if engine is None or not engine.context.remote:
            return Pacing(heartbeat=True, max_hold_s=10 * ack_wait_s)
        ctx = engine.context
        # The longest a review may rightly take: a call after each throttling wait, and the
        # wait for a slot (what is held is reviewed within half the ack wait).
        longest_s = (ctx.throttle.retries + 1) * (ctx.timeout_s + ctx.throttle.max_wait_s)
        horizon_s = ack_wait_s / 2
        return Pacing(
            max_batches=ctx.window.max_calls,  # a batch holds at least one call
            capacity=lambda: engine.capacity(horizon_s),
            heartbeat=True,
            max_hold_s=ack_wait_s + longest_s,
        )

    async def not_ready(self) -> list[str]:
        return [] if self.engine is not None else [NOT_LOADED]

    async def status(self) -> dict[str, Any]:
        doc = await super().status()
        doc["analyst"] = self.engine.status() if self.engine is not None else {"mode": NOT_LOADED}
        return doc

    async def handle(self, items: Sequence[Delivery[IntentAccepted]]) -> AsyncIterator[Ready]:
        """Review the batch in one graph run; yield each `IntentAnalyzed` as it is ready."""
        if self.engine is None:
            yield [(i, Transient(NOT_LOADED)) for i in range(len(items))]
            return
        mismatched: list[tuple[int, Rejected]] = []
        work: list[int] = []
        for i, item in enumerate(items):
            intent = item.value.intent
            if not s.names_intent(item.subject, intent.symbol, intent.intent_id):
                mismatched.append(
                    (
                        i,
                        Rejected(
                            "subject_mismatch",
                            f"intent for {intent.symbol} arrived on {item.subject}; expected "
                            f"{s.intent_event(s.INTENT_ACCEPTED, intent.symbol, intent.intent_id)}",
                        ),
                    )
                )
            else:
                work.append(i)
        if mismatched:
            yield mismatched
        state = self.trading_state
        cases = [case_for(items[i].value, state, self.settings) for i in work]
        async for reviewed in self.engine.stream(cases):
            yield [(work[k], [self._emit(items[work[k]].value, j.analysis)]) for k, j in reviewed]

    def _emit(self, accepted: IntentAccepted, analysis: Analysis) -> Emit:
        event = IntentAnalyzed.derive(
            intent_id=accepted.intent_id,
            producer=self.identity,
            causation_id=accepted.event_id,
            intent=accepted.intent,
            reference_price=accepted.reference_price,
            reference_price_ts=accepted.reference_price_ts,
            analysis=analysis,
        )
        return Emit(
            s.intent_event(s.INTENT_ANALYZED, accepted.intent.symbol, accepted.intent_id), event
        )
