"""The chat model behind the analyst, chosen by `settings.analyst.provider`.

`offline` is the deterministic reviewer. `openai`, `azure` and `openai_compatible` go through
langchain-openai with the configured timeout, no client retries and JSON mode requested from the
server. The analyst retries a throttled call itself (`calls.py`: it counts the 429s and narrows
its window of calls); any other failure falls back to the offline reviewer at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_openai import AzureChatOpenAI, ChatOpenAI

from agents.analyst.config import AnalystSettings, Provider
from agents.analyst.errors import AnalystConfigError
from agents.analyst.reviewer import OFFLINE_MODEL, OfflineReviewer

MAX_OUTPUT_TOKENS = 600
JSON_MODE: dict[str, Any] = {"response_format": {"type": "json_object"}}
NO_KEY = "not-needed"
"""API key sent to an OpenAI-compatible server configured without one."""


@dataclass(frozen=True)
class ChatModelChoice:
    """The configured model and how analyses name it."""

    model: Runnable[LanguageModelInput, BaseMessage]
    provider: Provider
    name: str
    """The configured model or deployment name."""
    remote: bool

    def label(self, served_model: str | None = None) -> str:
        """Return the `Analysis.model` value, e.g. `openai:gpt-4o-mini` or `offline-reviewer`."""
        if not self.remote:
            return OFFLINE_MODEL
        return f"{self.provider}:{served_model or self.name}"


def _require(value: str | None, setting: str, provider: Provider) -> str:
    if not value:
        env = "TRADEOPS_ANALYST__" + setting.upper()
        raise AnalystConfigError(
            f"analyst.{setting} is required for provider {provider!s}; set it in tradeops.toml "
            f"([analyst] {setting} = ...) or with {env}"
        )
    return value


def _api_key(settings: AnalystSettings, env_var: str) -> str:
    key = settings.api_key or os.environ.get(env_var)
    if not key:
        raise AnalystConfigError(
            f"no API key for provider {settings.provider!s}: set TRADEOPS_ANALYST__API_KEY or "
            f"{env_var} from the secret store (never in tradeops.toml)"
        )
    return key


def build_chat_model(settings: AnalystSettings) -> ChatModelChoice:
    """Return the chat model for `settings.provider`, ready to `abatch` review prompts."""
    provider = settings.provider
    if provider is Provider.OFFLINE:
        return ChatModelChoice(OfflineReviewer(), provider, OFFLINE_MODEL, remote=False)
    common: dict[str, Any] = {
        "timeout": settings.timeout_s,
        "max_retries": 0,
        "temperature": 0,
        "max_tokens": MAX_OUTPUT_TOKENS,
    }
    if provider is Provider.AZURE:
        deployment = _require(settings.azure_deployment, "azure_deployment", provider)
        model: Any = AzureChatOpenAI(
            azure_endpoint=_require(settings.azure_endpoint, "azure_endpoint", provider),
            azure_deployment=deployment,
            api_version=settings.api_version,
            api_key=_api_key(settings, "AZURE_OPENAI_API_KEY"),
            **common,
        )
        return ChatModelChoice(model.bind(**JSON_MODE), provider, deployment, remote=True)
    if provider is Provider.OPENAI_COMPATIBLE:
        model = ChatOpenAI(
            model=settings.model,
            base_url=_require(settings.base_url, "base_url", provider),
            api_key=settings.api_key or NO_KEY,
            **common,
        )
    else:
        model = ChatOpenAI(
            model=settings.model,
            api_key=_api_key(settings, "OPENAI_API_KEY"),
            **common,
        )
    return ChatModelChoice(model.bind(**JSON_MODE), provider, settings.model, remote=True)
