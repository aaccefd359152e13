"""Choosing the chat model from the analyst settings."""

from __future__ import annotations

import pytest
from langchain_core.runnables import RunnableBinding
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.errors import AnalystConfigError
from agents.analyst.providers import build_chat_model
from agents.analyst.reviewer import OfflineReviewer


def test_offline_is_the_default_and_the_deterministic_reviewer() -> None:
    choice = build_chat_model(AnalystSettings())

    assert isinstance(choice.model, OfflineReviewer)
    assert not choice.remote and choice.label() == "offline-reviewer"


def test_openai_compatible_requests_json_without_retries_within_the_timeout() -> None:
    settings = AnalystSettings(
        provider=Provider.OPENAI_COMPATIBLE,
        base_url="http://127.0.0.1:9/v1",
        model="local-llm",
        timeout_s=3.5,
    )

    choice = build_chat_model(settings)

    assert isinstance(choice.model, RunnableBinding)
    assert choice.model.kwargs == {"response_format": {"type": "json_object"}}
    inner = choice.model.bound
    assert isinstance(inner, ChatOpenAI)
    assert (inner.request_timeout, inner.max_retries) == (3.5, 0)
    assert str(inner.openai_api_base) == "http://127.0.0.1:9/v1"
    assert choice.label() == "openai_compatible:local-llm"
    assert choice.label("served-name") == "openai_compatible:served-name"


def test_azure_names_its_deployment() -> None:
    settings = AnalystSettings(
        provider=Provider.AZURE,
        azure_endpoint="https://example.openai.azure.com",
        azure_deployment="desk-reviewer",
        api_key="k",
    )

    choice = build_chat_model(settings)

    assert isinstance(choice.model, RunnableBinding)
    assert isinstance(choice.model.bound, AzureChatOpenAI)
    assert choice.label() == "azure:desk-reviewer"


def test_openai_compatible_without_base_url_says_which_setting_to_set() -> None:
    with pytest.raises(AnalystConfigError, match="TRADEOPS_ANALYST__BASE_URL"):
        build_chat_model(AnalystSettings(provider=Provider.OPENAI_COMPATIBLE))


def test_openai_without_any_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(AnalystConfigError, match="no API key"):
        build_chat_model(AnalystSettings(provider=Provider.OPENAI))
