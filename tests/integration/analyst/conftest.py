"""The analyst's integration fixtures: the real index (built once) and a local model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from knowledge import KnowledgeIndex
from tests.support.analyst import FakeLLM, serve_fake_llm


@pytest.fixture(scope="session")
def knowledge_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> KnowledgeIndex:
    """The MiniLM index of the shipped documents; the fingerprint keeps a reused cache honest."""
    cache = getattr(request.config, "cache", None)
    where = cache.mkdir("tradeops-knowledge") if cache else tmp_path_factory.mktemp("knowledge")
    index = KnowledgeIndex.open(Path(where))
    index.warm()
    return index


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """An OpenAI-compatible server on loopback that answers as the test sets it to."""
    async with serve_fake_llm() as fake:
        yield fake
