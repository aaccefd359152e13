"""Read stored messages with batched direct gets: the one stream reader (no consumer needed).

Agents hold no consumer-create permission, yet must rebuild state from the streams after a
restart; operators replay them for audits and look up one intent's events. A direct get with
`batch` returns up to N messages per request, closed by a status message (`204` end of batch,
`404` nothing more). Each batch is collected in the subscription's callback and the next one
is requested before the current one is handed out (3-4x faster than awaiting each message).

A stored message and a server status are told apart by what only the server produces: every
stored message of a direct-get reply carries `Nats-Sequence`; a status carries none. A client
may store a message with any header, `Status` included: it is still a stored message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bus.headers import (
    END_OF_BATCH,
    NO_MESSAGES,
    NUM_PENDING,
    SEQUENCE,
    STATUS,
    STREAM,
    SUBJECT,
    TIME_STAMP,
    stored_headers,
)


class ReplayError(Exception):
    """The server answered a direct get with an error status."""


@dataclass(frozen=True)
class StoredMsg:
    """One message as stored in a stream."""

    stream: str
    seq: int
    subject: str
    headers: dict[str, str]
    """The publisher's headers (the server's own `Nats-*` reply headers removed)."""
    data: bytes
    time: str

    @property
    def timestamp(self) -> datetime:
        return stored_time(self.time)


def stored_time(text: str) -> datetime:
    """The server's `Nats-Time-Stamp` (RFC 3339, up to nanoseconds, trailing zeros trimmed) as a
    datetime (to the microsecond): compare these, never the strings."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


def stored(msg: Msg, stream: str) -> StoredMsg:
    """Return the stored message a direct-get reply carries."""
    headers = msg.headers or {}
    return StoredMsg(
        stream=headers.get(STREAM, stream),
        seq=int(headers[SEQUENCE]),
        subject=headers.get(SUBJECT, ""),
        headers=stored_headers(headers),
        data=msg.data,
        time=headers.get(TIME_STAMP, ""),
    )


def is_stored(msg: Msg) -> bool:
    """Whether a direct-get reply is a stored message (else it is the server's status)."""
    return SEQUENCE in (msg.headers or {})


Batch = tuple[list[Msg], dict[str, str]]
"""The messages of one direct-get batch and the headers of the status message closing it."""


async def read_batches(
    nc: NATS,
    stream: str,
    *,
    subject: str = ">",
    start_seq: int = 1,
    start_time: datetime | None = None,
    batch: int = 1000,
    timeout_s: float = 10.0,
) -> AsyncIterator[list[StoredMsg]]:
    """Yield the stored messages of `stream` matching `subject`, one batch at a time."""
    batches: asyncio.Queue[Batch] = asyncio.Queue()
    current: list[Msg] = []

    async def collect(msg: Msg) -> None:
        nonlocal current
        if is_stored(msg):
            current.append(msg)
        else:
            batches.put_nowait((current, dict(msg.headers or {})))
            current = []

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect, pending_msgs_limit=4 * batch + 16)
    request: dict[str, object] = {"batch": batch, "next_by_subj": subject}
    if start_time is not None:
        request["start_time"] = start_time.isoformat()
    else:
        request["seq"] = max(start_seq, 1)
    api = f"$JS.API.DIRECT.GET.{stream}"
    try:
        await nc.publish(api, json.dumps(request).encode(), reply=inbox)
        while True:
            msgs, status = await asyncio.wait_for(batches.get(), timeout_s)
            code = status.get(STATUS)
            if code == NO_MESSAGES and not msgs:
                return
            if code not in (END_OF_BATCH, NO_MESSAGES):
                raise ReplayError(f"direct get on {stream} failed: {code} {status}")
            out = [stored(m, stream) for m in msgs]
            more = bool(out) and code == END_OF_BATCH and status.get(NUM_PENDING) != "0"
            if more:  # ask for the next batch before handing this one out
                request.pop("start_time", None)
                request["seq"] = out[-1].seq + 1
                await nc.publish(api, json.dumps(request).encode(), reply=inbox)
            if out:
                yield out
            if not more:
                return
    finally:
        await sub.unsubscribe()


async def read_stream(
    nc: NATS,
    stream: str,
    *,
    subject: str = ">",
    start_seq: int = 1,
    start_time: datetime | None = None,
    batch: int = 500,
    timeout_s: float = 5.0,
) -> AsyncIterator[StoredMsg]:
    """Yield every message of `stream` matching `subject`, from a sequence or a time."""
    async for chunk in read_batches(
        nc,
        stream,
        subject=subject,
        start_seq=start_seq,
        start_time=start_time,
        batch=batch,
        timeout_s=timeout_s,
    ):
        for msg in chunk:
            yield msg


async def read_all(
    nc: NATS, stream: str, subject: str, *, batch: int = 256, timeout_s: float = 5.0
) -> list[StoredMsg]:
    """Return every stored message of `stream` on `subject` (for small sets: one intent)."""
    out: list[StoredMsg] = []
    async for chunk in read_batches(nc, stream, subject=subject, batch=batch, timeout_s=timeout_s):
        out += chunk
    return out


async def read_latest(
    nc: NATS, stream: str, subject: str, *, batch: int = 256, timeout_s: float = 5.0
) -> list[StoredMsg]:
    """Return the last stored message of every subject matching `subject` (a few subjects).

    One `multi_last` direct get: the server finds the matching subjects in its subject index
    and returns each one's last message, without reading the stream's other messages. (A
    wildcard `next_by_subj` batch would read every block after the last match.)"""
    out: list[StoredMsg] = []
    done: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        if is_stored(msg):
            out.append(stored(msg, stream))
        else:
            done.put_nowait(dict(msg.headers or {}))

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=collect)
    request = {"multi_last": [subject], "batch": batch}
    try:
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), inbox)
        status = await asyncio.wait_for(done.get(), timeout_s)
    finally:
        await sub.unsubscribe()
    code = status.get(STATUS)
    if code not in (END_OF_BATCH, NO_MESSAGES):
        raise ReplayError(f"direct get on {stream} ({subject}) failed: {code} {status}")
    return out


async def read_one(nc: NATS, stream: str, seq: int, *, timeout_s: float = 5.0) -> StoredMsg | None:
    """Return the message stored at `seq` (None when there is none)."""
    async for chunk in read_batches(nc, stream, start_seq=seq, batch=1, timeout_s=timeout_s):
        return chunk[0] if chunk and chunk[0].seq == seq else None
    return None
