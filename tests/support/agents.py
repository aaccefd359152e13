"""Agents in the test's own event loop, and connecting to the test server as an identity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS

from agents.base import Agent
from contracts import Identity

ConnectAs = Callable[[Identity], Awaitable[NATS]]
"""The `connect_as` fixture: a connection to the test server as an identity."""


async def run_agent(agent: Agent) -> asyncio.Task[None]:
    """Start an agent and wait until its consumers are bound."""
    task = asyncio.create_task(agent.run())
    for _ in range(600):
        if task.done():
            task.result()
        if not await agent.readiness():
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"{agent.identity} not ready: {await agent.readiness()}")


async def stop_agent(agent: Agent, task: asyncio.Task[None]) -> None:
    agent.stop()
    await asyncio.wait_for(task, 30)
