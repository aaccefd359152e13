"""The risk gate: deterministic pre-trade checks over an exposure that counts pending approvals."""

from agents.risk.agent import RiskGate
from agents.risk.calendar import MarketHours, UnknownCalendar
from agents.risk.checks import CHECKS, CheckContext, Verdict, evaluate, explain, run_checks
from agents.risk.exposure import Exposure, ExposureView, Line

__all__ = [
    "CHECKS",
    "CheckContext",
    "Exposure",
    "ExposureView",
    "Line",
    "MarketHours",
    "RiskGate",
    "UnknownCalendar",
    "Verdict",
    "evaluate",
    "explain",
    "run_checks",
]
