"""Which agents exist and how to build one (imported lazily: the analyst loads a model)."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from contracts import AGENTS, Identity

if TYPE_CHECKING:
    from agents.base import Agent
    from agents.settings import Settings

AGENT_MODULES: dict[Identity, str] = {
    Identity.INGESTOR: "agents.ingestor.agent:Ingestor",
    Identity.ANALYST: "agents.analyst.agent:Analyst",
    Identity.RISK: "agents.risk.agent:RiskGate",
    Identity.EXECUTOR: "agents.executor.agent:Executor",
    Identity.LEDGER: "agents.ledger.agent:Ledger",
}
"""Identity -> `module:Class` of its agent."""


def available_agents() -> list[Identity]:
    """Return the agents this installation can run, in pipeline order."""
    return [
        a
        for a in AGENTS
        if a in AGENT_MODULES and importlib.util.find_spec(AGENT_MODULES[a].partition(":")[0])
    ]


def build_agent(identity: Identity, settings: Settings) -> Agent:
    """Import and construct the agent for `identity`."""
    try:
        target = AGENT_MODULES[identity]
    except KeyError:
        known = ", ".join(str(a) for a in available_agents()) or "none"
        raise ValueError(f"no agent named {identity!s}; known agents: {known}") from None
    module_name, _, class_name = target.partition(":")
    cls: type[Agent] = getattr(importlib.import_module(module_name), class_name)
    return cls(settings)
