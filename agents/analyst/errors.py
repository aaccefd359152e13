"""Errors of the analyst."""

from __future__ import annotations


class AnalystError(Exception):
    """Root of analyst errors."""

    code = "analyst_error"


class AnalystConfigError(AnalystError):
    """The analyst's provider settings are incomplete or inconsistent."""

    code = "analyst_config"


class ReviewPromptError(AnalystError):
    """A review prompt does not carry the delimited intent and passages blocks."""

    code = "review_prompt"
