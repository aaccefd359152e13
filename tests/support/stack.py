"""Start the embedded stack for end-to-end tests, and read every intent's outcome."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from nats.aio.client import Client as NATS

from agents.settings import load_settings
from bus import Credentials, connect
from bus.replay import read_stream
from contracts import Identity
from contracts import topology as t
from contracts.kinds import TERMINAL as TERMINAL_KINDS
from ops.audit.facts import fact_of
from ops.stack.embedded import EmbeddedStack
from ops.stack.scratch import write_scratch_config

TERMINAL = tuple(TERMINAL_KINDS)


def write_stack_config(data_dir: Path) -> Path:
    """A test stack's settings: fresh ports, a 100 ms feed, a rate limit no test reaches."""
    return write_scratch_config(
        data_dir, feed_interval_ms=100, limits={"rate_limit_per_s": 100_000}
    )


@asynccontextmanager
async def running_stack(
    data_dir: Path, database_url: str | None = None
) -> AsyncIterator[EmbeddedStack]:
    write_stack_config(data_dir)
    settings = load_settings(data_dir)
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    async with EmbeddedStack(settings).running() as stack:
        yield stack


async def connect_to(stack: EmbeddedStack, identity: Identity) -> NATS:
    return await connect(stack.layout.url, Credentials(identity, stack.settings.certs_dir))


async def outcomes(ops_nc: NATS) -> dict[str, Counter[str]]:
    """Count every intent's events by kind across the pipeline's streams."""
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for stream in (t.SUBMISSIONS, t.INTENTS, t.RISK, t.ORDERS, t.LEDGER, t.DLQ):
        async for msg in read_stream(ops_nc, stream):
            fact = fact_of(msg)  # the intent from the subject and payload, never a header
            if fact.intent_id:
                kinds[fact.intent_id][fact.kind] += 1
    return kinds


def terminal_count(events: Counter[str]) -> int:
    return sum(events[k] for k in TERMINAL)


async def fetch_one(database_url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def new_id() -> str:
    return str(uuid.uuid4())
