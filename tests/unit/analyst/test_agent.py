"""The analyst agent's batch handler, without a bus: deliveries in, emits out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.analyst.agent import Analyst
from agents.analyst.config import AnalystSettings
from agents.analyst.engine import AnalystEngine
from agents.settings import Settings
from bus import Delivery, Emit, Rejected, Transient
from contracts import Identity, IntentAccepted, IntentAnalyzed, derive_event_id
from contracts import subjects as s
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from tests.support.analyst import INJECTION, accepted
from tests.support.knowledge import HashEncoder


def delivery(event: IntentAccepted, subject: str | None = None) -> Delivery[IntentAccepted]:
    subject = subject or s.intent_event(s.INTENT_ACCEPTED, event.intent.symbol, event.intent_id)
    msg: Any = None
    return Delivery(event, subject, stream_seq=1, num_delivered=1, msg=msg)


@pytest.fixture
def analyst(tmp_path: Path) -> Analyst:
    return Analyst(Settings(data_dir=tmp_path))


async def test_before_the_model_loads_the_agent_is_not_ready_and_retries(
    analyst: Analyst,
) -> None:
    outcomes = await analyst.handle([delivery(accepted())])

    assert await analyst.not_ready() == ["model/index not loaded"]
    assert isinstance(outcomes[0], Transient)


async def test_batch_emits_one_analyzed_event_per_intent_and_dead_letters_a_mismatch(
    analyst: Analyst, tmp_path: Path
) -> None:
    index = KnowledgeIndex.open(tmp_path / "kn", DEFAULT_DOCS_DIR, HashEncoder())
    analyst.engine = AnalystEngine.create(AnalystSettings(), index)
    ordinary, injected, misrouted = accepted(), accepted(rationale=INJECTION), accepted()

    outcomes = await analyst.handle(
        [
            delivery(ordinary),
            delivery(injected),
            delivery(
                misrouted, subject=s.intent_event(s.INTENT_ACCEPTED, "MSFT", misrouted.intent_id)
            ),
        ]
    )

    assert await analyst.not_ready() == []
    first, second, third = outcomes
    assert isinstance(third, Rejected) and third.code == "subject_mismatch"
    assert isinstance(first, list) and isinstance(second, list)
    (emit,) = first
    assert isinstance(emit, Emit) and isinstance(emit.event, IntentAnalyzed)
    assert emit.subject == s.intent_event(s.INTENT_ANALYZED, "AAPL", ordinary.intent_id)
    assert emit.event.event_id == derive_event_id(ordinary.intent_id, "intent.analyzed")
    assert emit.event.causation_id == ordinary.event_id
    assert emit.event.producer is Identity.ANALYST
    assert emit.event.intent == ordinary.intent
    assert emit.event.reference_price == ordinary.reference_price
    (flagged,) = second
    assert isinstance(flagged.event, IntentAnalyzed)
    assert flagged.event.analysis.injection_flagged
    assert (await analyst.status())["analyst"]["mode"] == "offline"
