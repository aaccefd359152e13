"""The analyst: retrieval over the firm's documents, a chat-model review, a guard. Advisory only."""

from agents.analyst.agent import Analyst
from agents.analyst.case import ReviewCase, ReviewContext, case_for, retrieval_queries
from agents.analyst.engine import AnalystEngine
from agents.analyst.errors import AnalystConfigError, AnalystError, ReviewPromptError
from agents.analyst.guard import Judgement, Skipped, judge
from agents.analyst.injection import InjectionFinding, detect_injection
from agents.analyst.output import ReviewOutput, UnusableOutput, parse_output
from agents.analyst.providers import ChatModelChoice, build_chat_model
from agents.analyst.reviewer import OFFLINE_MODEL, OfflineReviewer

__all__ = [
    "OFFLINE_MODEL",
    "Analyst",
    "AnalystConfigError",
    "AnalystEngine",
    "AnalystError",
    "ChatModelChoice",
    "InjectionFinding",
    "Judgement",
    "OfflineReviewer",
    "ReviewCase",
    "ReviewContext",
    "ReviewOutput",
    "ReviewPromptError",
    "Skipped",
    "UnusableOutput",
    "build_chat_model",
    "case_for",
    "detect_injection",
    "judge",
    "parse_output",
    "retrieval_queries",
]
