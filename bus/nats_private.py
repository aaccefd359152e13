"""The only place tradeops reaches into nats-py's private attributes.

nats-py offers no public way to take the messages a subscription has already buffered without
waiting, nor the client behind a JetStream context. Both are needed by the pull runtime; they
live here, so an upgrade of nats-py (pinned in `pyproject.toml` to the minor range the tests
ran against) is checked in one module.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext


def client_of(js: JetStreamContext) -> NATS:
    """Return the connection a JetStream context publishes and requests on."""
    nc: NATS = js._nc
    return nc


def take_buffered(sub: Subscription, limit: int) -> list[Msg]:
    """Take up to `limit` messages the subscription has already received, without waiting,
    keeping its pending-bytes count (what slow-consumer detection reads) right."""
    queue = sub._pending_queue
    out: list[Msg] = []
    while len(out) < limit and not queue.empty():
        msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)
        queue.task_done()
        out.append(msg)
    return out
