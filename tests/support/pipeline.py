"""Helpers for tests against a real nats-server: a minimal hop, stream reads, polling."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bus import Credentials, Delivery, Emit, Publisher, Signer
from contracts import Identity, SubmitIntent, TradeIntent, parse
from tests.support import events


def intent_payload(symbol: str = "AAPL", quantity: str = "10", **extra: object) -> bytes:
    body: dict[str, object] = {
        "intent_id": str(uuid.uuid4()),
        "account": "paper-1",
        "symbol": symbol,
        "side": "buy",
        "quantity": quantity,
    }
    body.update(extra)
    return json.dumps(body).encode()


def decode_submitted(msg: Msg) -> SubmitIntent:
    return parse(SubmitIntent, msg.data)


def accept(item: Delivery[SubmitIntent]) -> list[Emit]:
    """The minimal ingestor step: normalize and emit `intent.accepted.<SYMBOL>.<intent id>`."""
    assert item.value.intent_id is not None
    intent = TradeIntent.from_submission(item.value, item.value.intent_id)
    return [events.emit(events.intent_accepted(intent))]


def publisher_for(
    nc: NATS, certs_dir: Path, identity: Identity, ack_timeout_s: float = 2.0
) -> Publisher:
    creds = Credentials(identity, certs_dir)
    return Publisher(
        nc.jetstream(), Signer.from_file(identity, creds.signing_key_file), ack_timeout_s
    )


async def read_subject(ops_nc: NATS, stream: str, subject: str) -> list[Msg]:
    """Return every message of `subject` in `stream`, read by an ephemeral ordered consumer."""
    js = ops_nc.jetstream()
    info = await js.stream_info(stream, subjects_filter=subject)
    total = sum((info.state.subjects or {}).values())
    out: list[Msg] = []
    if total == 0:
        return out
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    try:
        while len(out) < total:
            out.append(await sub.next_msg(timeout=5))
    finally:
        await sub.unsubscribe()
    return out


async def count_subject(ops_nc: NATS, stream: str, subject: str) -> int:
    info = await ops_nc.jetstream().stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, every_s: float = 0.1
) -> None:
    """Poll `check` until it holds, or fail with a clear message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(every_s)


async def publish_all(nc: NATS, subject: str, payloads: Sequence[bytes]) -> None:
    js = nc.jetstream()
    futures = [await js.publish_async(subject, p) for p in payloads]
    await asyncio.gather(*futures)
