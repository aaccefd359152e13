"""The offline reviewer: a deterministic LangChain chat model applying the review rules.

It reads the review prompt it is given (the case and the retrieved passages, see `prompt.py`)
and answers with the JSON object a remote model would return, citing the retrieved passages
its rules rely on. Same prompt in, same answer out; no network, no randomness.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agents.analyst.case import ReviewCase
from agents.analyst.output import ReviewOutput
from agents.analyst.prompt import parse_review_prompt
from agents.analyst.rules import decide

OFFLINE_MODEL = "offline-reviewer"


class OfflineReviewer(BaseChatModel):
    """The default analyst model, and the stand-in whenever the configured model fails."""

    model_name: str = OFFLINE_MODEL

    @property
    def _llm_type(self) -> str:
        return "tradeops-offline-reviewer"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def review(self, case: ReviewCase, retrieved_refs: list[str]) -> ReviewOutput:
        """Review one case directly (the guard's fallback path, no prompt round trip)."""
        return decide(case, retrieved_refs)

    def answer(self, messages: list[BaseMessage]) -> ChatResult:
        """Review one rendered prompt (pure: the same prompt gives the same answer)."""
        case, passages = parse_review_prompt(messages)
        output = self.review(case, [p.ref for p in passages])
        message = AIMessage(
            content=output.model_dump_json(),
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self.answer(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Pure and fast: answer on the event loop instead of a thread-pool round trip.
        return self.answer(messages)
