"""The analyst's settings section: `[analyst]` (provider, model, concurrency, budget, prices)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from agents.common.config import Section


class Provider(StrEnum):
    OFFLINE = "offline"
    OPENAI = "openai"
    AZURE = "azure"
    OPENAI_COMPATIBLE = "openai_compatible"


class ModelPrice(Section):
    """What one model costs, in US dollars per 1,000 tokens (the provider's list price)."""

    input_per_1k_usd: Annotated[Decimal, Field(ge=0)]
    """Per 1,000 prompt (input) tokens."""
    output_per_1k_usd: Annotated[Decimal, Field(ge=0)]
    """Per 1,000 completion (output) tokens."""


def _default_prices() -> dict[str, ModelPrice]:
    # List prices when this table was written; the desk's contract price belongs in its config.
    return {
        "gpt-4o-mini": ModelPrice(
            input_per_1k_usd=Decimal("0.00015"), output_per_1k_usd=Decimal("0.0006")
        ),
        "gpt-4o": ModelPrice(input_per_1k_usd=Decimal("0.0025"), output_per_1k_usd=Decimal("0.01")),
    }


WORKING_DAY_TOKENS = 60 * 8 * 3600 * 1_500
"""60 intents/s (the rate benchmarked against a 1 s model) for an 8-hour day at ~1,500 tokens a
review (system prompt, the case and 4 passages in, at most a few hundred out): 2.592 G tokens."""


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
    """One model call's limit; a call that takes longer degrades with `provider_timeout`."""
    top_k: int = 4
    max_concurrency: Annotated[int, Field(ge=1, le=4096)] = 256
    """Model calls in flight at most (a sliding window). Throttling (429) halves the window, each
    success widens it by one, up to this. 256 calls of ~1 s sustain 60 intents/s with room."""
    throttle_retries: Annotated[int, Field(ge=0, le=20)] = 6
    """Retries of one review the provider throttled (429); after them it degrades as an error."""
    retry_after_max_s: Annotated[float, Field(gt=0)] = 60.0
    """The longest `Retry-After` honoured; a provider asking for longer is not retried."""
    max_tokens_per_day: Annotated[int, Field(ge=0)] = 2_600_000_000
    """Tokens per UTC day before the provider is no longer called (reason `budget_exhausted`):
    a working day at the benchmarked rate, see `WORKING_DAY_TOKENS`."""
    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)
    """Price per model name; a served name such as `gpt-4o-mini-2024-07-18` takes the price of
    the longest name it starts with. A model without a price has its tokens counted, no cost."""
