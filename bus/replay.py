"""Read a stream's stored messages in order with batched direct gets (no consumer needed).

Agents hold no consumer-create permission, yet must rebuild state from the streams after a
restart; operators replay them for audits. A direct get with `batch` returns up to N messages
per request, closed by an `EOB` status message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client as NATS

STATUS_HEADER = "Status"
NO_MESSAGES = "404"
END_OF_BATCH = "204"


@dataclass(frozen=True)
class StoredMsg:
    """One message as stored in a stream."""

    stream: str
    seq: int
    subject: str
    headers: dict[str, str]
    data: bytes
    time: str

    @property
    def timestamp(self) -> datetime:
        text = self.time.rstrip("Z")
        head, _, frac = text.partition(".")
        return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]:0<6}+00:00")


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
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    request: dict[str, object] = {"batch": batch, "next_by_subj": subject}
    if start_time is not None:
        request["start_time"] = start_time.isoformat()
    else:
        request["seq"] = max(start_seq, 1)
    try:
        while True:
            await nc.publish(
                f"$JS.API.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox
            )
            last_seq = None
            more = False
            while True:
                msg = await sub.next_msg(timeout=timeout_s)
                headers = dict(msg.headers or {})
                status = headers.get(STATUS_HEADER)
                if status == NO_MESSAGES:
                    return
                if status == END_OF_BATCH:
                    more = headers.get("Nats-Num-Pending", "0") != "0"
                    break
                if status is not None:
                    raise RuntimeError(f"direct get on {stream} failed: {status} {headers}")
                last_seq = int(headers["Nats-Sequence"])
                yield StoredMsg(
                    stream=headers.get("Nats-Stream", stream),
                    seq=last_seq,
                    subject=headers.get("Nats-Subject", ""),
                    headers={k: v for k, v in headers.items() if not k.startswith("Nats-")}
                    | {k: v for k, v in headers.items() if k == "Nats-Msg-Id"},
                    data=msg.data,
                    time=headers.get("Nats-Time-Stamp", ""),
                )
            if not more or last_seq is None:
                return
            request.pop("start_time", None)
            request["seq"] = last_seq + 1
    finally:
        await sub.unsubscribe()
