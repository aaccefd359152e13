"""The analyst agent on a real nats-server with a slow model: nothing redelivered, provenance."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from agents.analyst.agent import Analyst
from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.prompt import PROMPT_VERSION
from agents.settings import Settings
from bus import Emit
from bus.provision import consumer_config
from contracts import Identity, IntentAnalyzed
from contracts import subjects as s
from contracts import topology as t
from knowledge import KnowledgeIndex, default_cache_dir
from knowledge.index import FINGERPRINT_FILE
from tests.support.agents import ConnectAs, run_agent, stop_agent
from tests.support.analyst import FakeLLM, accepted
from tests.support.pipeline import count_subject, eventually, publisher_for, read_subject

pytestmark = pytest.mark.integration

MODEL = "test-model"
ACK_WAIT_S = 1.5


async def test_a_review_longer_than_the_ack_wait_is_not_redelivered_nor_asked_twice(
    ops_nc: NATS,
    connect_as: ConnectAs,
    certs_dir: Path,
    agent_settings: Settings,
    knowledge_index: KnowledgeIndex,
    llm: FakeLLM,
) -> None:
    # Arrange: the model answers in 4 s, more than twice the consumer's ack wait of 1.5 s.
    llm.delay_s = 4.0
    assert knowledge_index.cache_dir is not None
    shutil.copytree(knowledge_index.cache_dir, default_cache_dir(agent_settings.data_dir))
    settings = agent_settings.model_copy(
        update={
            "analyst": AnalystSettings(
                provider=Provider.OPENAI_COMPATIBLE,
                base_url=llm.url,
                model=MODEL,
                api_key="test-key",
                timeout_s=10.0,
            )
        }
    )
    spec = replace(t.consumer("analyst"), ack_wait_s=ACK_WAIT_S)
    await ops_nc.jetstream().add_consumer(t.INTENTS, consumer_config(spec))
    analyst = Analyst(settings)
    analyst.consumer = spec
    task = await run_agent(analyst)
    intents = [accepted() for _ in range(3)]
    ingestor = await connect_as(Identity.INGESTOR)

    # Act
    try:
        await publisher_for(ingestor, certs_dir, Identity.INGESTOR).publish(
            [Emit(s.intent_event(s.INTENT_ACCEPTED, "AAPL", e.intent_id), e) for e in intents]
        )

        async def all_analyzed() -> bool:
            info = await ops_nc.jetstream().consumer_info(t.INTENTS, "analyst")
            analyzed = await count_subject(ops_nc, t.INTENTS, "intent.analyzed.AAPL.*")
            return analyzed == 3 and info.num_ack_pending == 0

        await eventually(all_analyzed, timeout_s=30)
        status = await analyst.status()
    finally:
        await stop_agent(analyst, task)

    # Assert: one delivery and one model call per intent; every analysis says how it was made.
    info = await ops_nc.jetstream().consumer_info(t.INTENTS, "analyst")
    assert info.num_redelivered == 0 and info.num_pending == 0
    assert len(llm.requests) == 3
    assert analyst.stats.in_progress_sent >= 3
    msgs = await read_subject(ops_nc, t.INTENTS, "intent.analyzed.AAPL.*")
    fingerprint = (knowledge_index.cache_dir / FINGERPRINT_FILE).read_text().strip()
    for msg in msgs:
        analysis = IntentAnalyzed.model_validate_json(msg.data).analysis
        assert not analysis.degraded and analysis.degraded_reason is None
        assert analysis.provider == "openai_compatible"
        assert analysis.model == f"openai_compatible:{MODEL}"
        assert analysis.prompt_version == PROMPT_VERSION
        assert analysis.index_fingerprint == fingerprint and len(fingerprint) == 64
    assert {e.intent_id for e in (IntentAnalyzed.model_validate_json(m.data) for m in msgs)} == {
        e.intent_id for e in intents
    }
    doc = status["analyst"]
    assert doc["prompt_version"] == PROMPT_VERSION and doc["index_fingerprint"] == fingerprint
    assert doc["spend"]["models"][MODEL]["calls"] == 3
