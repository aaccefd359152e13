"""The analyst agent: reviews accepted intents and publishes `intent.analyzed.<SYMBOL>`.

Consumes `intent.accepted.*` (durable `analyst`), runs the analyst graph over each fetched
batch, and emits one `IntentAnalyzed` per intent with a deterministic event id. The model and
the index load in a thread at start; until then the agent reports not ready and naks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from agents.analyst.case import case_for
from agents.analyst.engine import AnalystEngine
from agents.base import Agent, Worker
from agents.settings import Settings
from bus import Delivery, Emit, Outcome, Rejected, Transient
from contracts import Identity, IntentAccepted, IntentAnalyzed, parse
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

    async def open(self) -> None:
        """Load the embedding model, the index (built on first use) and the chat model."""
        self.engine = await asyncio.to_thread(AnalystEngine.load, self.settings)
        log.info("analyst ready: %s", self.engine.status())

    def workers(self) -> Sequence[Worker]:
        return [
            Worker(
                t.consumer("analyst"),
                lambda msg: parse(IntentAccepted, msg.data),
                self.handle,
            )
        ]

    async def not_ready(self) -> list[str]:
        return [] if self.engine is not None else [NOT_LOADED]

    async def status(self) -> dict[str, Any]:
        doc = await super().status()
        doc["analyst"] = self.engine.status() if self.engine is not None else {"mode": NOT_LOADED}
        return doc

    async def handle(self, items: Sequence[Delivery[IntentAccepted]]) -> Sequence[Outcome]:
        """Review the whole batch in one graph run; one `IntentAnalyzed` per intent."""
        if self.engine is None:
            return [Transient(NOT_LOADED)] * len(items)
        outcomes: list[Outcome] = []
        work: list[int] = []
        for i, item in enumerate(items):
            outcomes.append([])  # replaced below by the rejection or the analysis
            intent = item.value.intent
            if not s.names_intent(item.subject, intent.symbol, intent.intent_id):
                outcomes[i] = Rejected(
                    "subject_mismatch",
                    f"intent for {intent.symbol} arrived on {item.subject}; expected "
                    f"{s.intent_event(s.INTENT_ACCEPTED, intent.symbol, intent.intent_id)}",
                )
            else:
                work.append(i)
        state = self.trading_state
        cases = [case_for(items[i].value, state, self.settings) for i in work]
        analyses = await self.engine.analyze(cases)
        for i, analysis in zip(work, analyses, strict=True):
            accepted = items[i].value
            event = IntentAnalyzed.derive(
                intent_id=accepted.intent_id,
                producer=self.identity,
                causation_id=accepted.event_id,
                intent=accepted.intent,
                reference_price=accepted.reference_price,
                reference_price_ts=accepted.reference_price_ts,
                analysis=analysis,
            )
            subject = s.intent_event(s.INTENT_ANALYZED, accepted.intent.symbol, accepted.intent_id)
            outcomes[i] = [Emit(subject, event)]
        return outcomes
