"""The analyst's settings section: `[analyst]` (provider, model, budget)."""

from __future__ import annotations

from enum import StrEnum

from agents.common.config import Section


class Provider(StrEnum):
    OFFLINE = "offline"
    OPENAI = "openai"
    AZURE = "azure"
    OPENAI_COMPATIBLE = "openai_compatible"


class AnalystSettings(Section):
    provider: Provider = Provider.OFFLINE
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    """For `openai_compatible`: the server's `/v1` URL."""
    api_key: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str = "2024-10-21"
    timeout_s: float = 20.0
    top_k: int = 4
    max_tokens_per_day: int = 2_000_000
