"""The analyst agent's batch handler, without a bus: deliveries in, emits out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.analyst.agent import Analyst
from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.engine import AnalystEngine
from agents.analyst.prompt import PROMPT_VERSION
from agents.settings import Settings
from bus import Delivery, Emit, Rejected, Transient
from contracts import Identity, IntentAccepted, IntentAnalyzed, derive_event_id
from contracts import subjects as s
from knowledge import DEFAULT_DOCS_DIR, KnowledgeIndex
from tests.support.analyst import INJECTION, accepted, outcomes
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
    (outcome,) = await outcomes(analyst.handle([delivery(accepted())]), 1)

    assert await analyst.not_ready() == ["model/index not loaded"]
    assert isinstance(outcome, Transient)


async def test_batch_emits_one_analyzed_event_per_intent_and_dead_letters_a_mismatch(
    analyst: Analyst, tmp_path: Path
) -> None:
    index = KnowledgeIndex.open(tmp_path / "kn", DEFAULT_DOCS_DIR, HashEncoder())
    analyst.engine = AnalystEngine.create(AnalystSettings(), index)
    ordinary, injected, misrouted = accepted(), accepted(rationale=INJECTION), accepted()

    answers = analyst.handle(
        [
            delivery(ordinary),
            delivery(injected),
            delivery(
                misrouted, subject=s.intent_event(s.INTENT_ACCEPTED, "MSFT", misrouted.intent_id)
            ),
        ]
    )
    first, second, third = await outcomes(answers, 3)

    assert await analyst.not_ready() == []
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


async def test_analyzed_events_record_provider_prompt_version_and_index_fingerprint(
    analyst: Analyst, tmp_path: Path
) -> None:
    index = KnowledgeIndex.open(tmp_path / "kn", DEFAULT_DOCS_DIR, HashEncoder())
    analyst.engine = AnalystEngine.create(AnalystSettings(), index)

    ((emit,),) = await outcomes(analyst.handle([delivery(accepted())]), 1)  # type: ignore[misc]

    analysis = emit.event.analysis
    assert analysis.provider == "offline" and analysis.model == "offline-reviewer"
    assert analysis.prompt_version == PROMPT_VERSION
    assert analysis.index_fingerprint == (tmp_path / "kn" / "fingerprint").read_text().strip()


def test_the_offline_analyst_keeps_one_batch_at_a_time_with_in_progress_acks(
    analyst: Analyst, tmp_path: Path
) -> None:
    index = KnowledgeIndex.open(tmp_path / "kn", DEFAULT_DOCS_DIR, HashEncoder())
    analyst.engine = AnalystEngine.create(AnalystSettings(), index)

    pacing = analyst.pacing()

    assert pacing.heartbeat and pacing.max_batches == 1 and pacing.capacity is None


def test_a_remote_analyst_holds_what_its_window_reviews_in_half_the_ack_wait(
    analyst: Analyst, tmp_path: Path
) -> None:
    index = KnowledgeIndex.open(tmp_path / "kn", DEFAULT_DOCS_DIR, HashEncoder())
    settings = AnalystSettings(
        provider=Provider.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1", max_concurrency=64
    )
    analyst.engine = AnalystEngine.create(settings, index)
    window = analyst.engine.context.window

    pacing = analyst.pacing()
    assert pacing.heartbeat and pacing.max_batches == 64 and pacing.capacity is not None
    window.latency_s = 1.0
    assert pacing.capacity() == 64 * 30  # 64 calls of 1 s for 30 s (ack wait 60 s)
    window.throttle(window.round)
    window.latency_s = 60.0
    assert pacing.capacity() == 32  # never less than the (halved) window
