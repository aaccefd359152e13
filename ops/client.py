"""Operator-side connections and intent submission, shared by the CLI and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from agents.settings import Settings
from bus import Credentials, Verifier, connect
from contracts import Identity, SubmitIntent
from contracts import subjects as s
from ops.audit.trail import IntentTrail, canonical_intent_id, find_trail
from ops.stack.embedded import state_file


def stack_nats_url(settings: Settings) -> str:
    """The running stack's NATS URL (from its state file), else the configured one."""
    try:
        doc: dict[str, Any] = json.loads(state_file(settings.data_dir).read_text())
        return str(doc["nats"]["url"])
    except (OSError, ValueError, KeyError):
        return settings.nats_servers()[0]


def stack_database_url(settings: Settings) -> str | None:
    if settings.database_url:
        return settings.database_url
    try:
        doc: dict[str, Any] = json.loads(state_file(settings.data_dir).read_text())
        url = doc["database"]["url"]
        return str(url) if url else None
    except (OSError, ValueError, KeyError):
        return None


class StackUnavailable(Exception):
    """The stack in the data dir cannot be reached; the message says what to do."""


@asynccontextmanager
async def connected(settings: Settings, identity: Identity) -> AsyncIterator[NATS]:
    """Connect to the stack as `identity` (certificates from the data dir)."""
    url = stack_nats_url(settings)
    try:
        nc = await connect(
            url,
            Credentials(identity, settings.certs_dir),
            allow_reconnect=False,
            max_reconnect_attempts=1,  # nats-py also applies it to the first connect
            connect_timeout_s=3.0,
        )
    except FileNotFoundError as exc:
        raise StackUnavailable(str(exc)) from None
    except Exception as exc:
        raise StackUnavailable(
            f"cannot reach NATS at {url} as {identity} ({exc!r}); is the stack running? "
            f"`tradeops status --data-dir {settings.data_dir}`"
        ) from None
    try:
        yield nc
    finally:
        await nc.close()


async def submit(nc: NATS, intent: SubmitIntent) -> uuid.UUID:
    """Publish an intent as the client; return its id (assigned here when absent)."""
    if intent.intent_id is None:
        intent = intent.model_copy(update={"intent_id": uuid.uuid4()})
    assert intent.intent_id is not None
    payload = intent.model_dump_json(exclude_none=True).encode()
    await nc.jetstream().publish(s.of(s.INTENT_SUBMITTED, intent.symbol), payload)
    return intent.intent_id


async def submit_raw(nc: NATS, symbol: str, payload: bytes) -> None:
    """Publish arbitrary bytes as a submission (to show how bad input is handled)."""
    await nc.jetstream().publish(s.of(s.INTENT_SUBMITTED, symbol), payload)


async def wait_outcome(
    ops_nc: NATS, intent_id: uuid.UUID | str, certs_dir: Path, timeout_s: float = 30.0
) -> IntentTrail:
    """Wait until the intent reaches a terminal outcome (or the timeout); return its trail.

    Follows the intent's own subjects (`*.*.*.<id>`, `dlq.*.<id>`) and reads the trail again
    whenever one of its events is stored, so the answer comes within one lookup of the terminal
    event; nothing else in the store is read. A slow re-check covers a missed message."""
    verifier = Verifier.from_dir(certs_dir)
    wanted = canonical_intent_id(intent_id)
    stored = asyncio.Event()

    async def on_event(_msg: Msg) -> None:
        stored.set()

    subs = [
        await ops_nc.subscribe(s.of_intent(wanted), cb=on_event),
        await ops_nc.subscribe(s.dead_letters_of(wanted), cb=on_event),
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            stored.clear()
            trail = await find_trail(ops_nc, wanted, verifier)
            left = deadline - loop.time()
            if trail.terminal or left <= 0:
                return trail
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stored.wait(), min(left, RECHECK_S))
            await asyncio.sleep(STORE_GRACE_S)  # published is not yet readable by direct get
    finally:
        for sub in subs:
            await sub.unsubscribe()


RECHECK_S = 1.0
"""Re-read the trail at least this often while waiting (a reconnect may miss a message)."""
STORE_GRACE_S = 0.002
