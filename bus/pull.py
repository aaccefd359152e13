"""A continuous pull from a durable consumer: low latency at low rates, batches at high rates.

nats-py's `fetch(n)` waits until n messages arrived or the timeout passed once one lingering
request is open, so at low rates every hop waited for its fetch timeout. Here the consumer keeps
enough pull credit outstanding (requests with `batch` and `expires`), and `next_batch` returns
as soon as any message is there, with whatever else has already arrived (up to the batch size).
Needs only publish on `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` and the identity's inbox.

A consumer with a pinned priority group (`ConsumerSpec.pinned_group`) serves one client at a time:
requests name the group and, once a delivery told it, the pin id. Binding first asks the server to
unpin (`$JS.API.CONSUMER.UNPIN...`), so a restarted agent takes over at once rather than after the
old pin's ttl; a `423` (pin mismatch: another client holds it, or the server restarted) clears the
pin id and the next request competes for it again. A pinned consumer keeps one request open at a
time: a second one sent before the pin id is known would sit unserved while counted as credit, and
a 423 could not be matched to the request it ended.
"""

from __future__ import annotations

import json
import logging
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError

from bus.headers import CONTROL_MESSAGE as HEARTBEAT
from bus.headers import PENDING_MESSAGES as PENDING_MSGS
from bus.headers import PIN_ID, PIN_MISMATCH, STATUS, is_pull_status
from bus.nats_private import take_buffered

UNPIN_TIMEOUT_S = 2.0

log = logging.getLogger("tradeops.pull")


def stored_headers(headers: dict[str, str] | None) -> dict[str, str] | None:
    """Return a delivery's headers as stored: without the pin id the server added on delivery."""
    if not headers or PIN_ID not in headers:
        return headers
    return {k: v for k, v in headers.items() if k != PIN_ID}


class PullConsumer:
    """Pull credit management for one bound durable consumer."""

    def __init__(
        self,
        nc: NATS,
        stream: str,
        durable: str,
        batch: int,
        expires_s: float = 2.0,
        *,
        group: str | None = None,
    ) -> None:
        self.nc = nc
        self.durable = durable
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.unpin_subject = f"$JS.API.CONSUMER.UNPIN.{stream}.{durable}"
        self.batch = batch
        self.expires_s = expires_s
        self.group = group
        self.pin_id: str | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._credit = 0
        self._expiry = 0.0
        self._reconnects = -1

    async def bind(self) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, pending_msgs_limit=4 * self.batch + 64)
        self._credit = 0
        self.pin_id = None
        if self.group is not None:
            await self._unpin()

    async def _unpin(self) -> None:
        request = json.dumps({"group": self.group}).encode()
        try:
            reply = await self.nc.request(self.unpin_subject, request, timeout=UNPIN_TIMEOUT_S)
        except Exception as exc:  # no pin to take over is fine; so is a slow server: 423 later
            log.warning("unpin of %s failed: %r", self.unpin_subject, exc)
            return
        error = json.loads(reply.data or b"{}").get("error")
        if error:
            log.info("unpin of %s: %s", self.unpin_subject, error.get("description"))

    async def unbind(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    @property
    def bound(self) -> bool:
        return self._sub is not None

    async def _top_up(self) -> None:
        now = time.monotonic()
        reconnects = int(self.nc.stats.get("reconnects", 0))
        if reconnects != self._reconnects or now > self._expiry:
            # After a reconnect (or a lost expiry notice) the server holds none of our requests.
            # A pin id is kept: still ours if the server kept it, else the next answer is a 423.
            self._credit, self._reconnects = 0, reconnects
        if self._credit > (0 if self.group is not None else self.batch // 2):
            return
        want = self.batch * 2 - self._credit
        request: dict[str, object] = {"batch": want, "expires": int(self.expires_s * 1e9)}
        if self.group is not None:
            request["group"] = self.group
            if self.pin_id is not None:
                request["id"] = self.pin_id
        await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self._inbox)
        self._credit += want
        self._expiry = now + self.expires_s + 0.5

    def _settle_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        if headers.get(STATUS) == HEARTBEAT:
            return
        if headers.get(STATUS) == PIN_MISMATCH:
            log.warning(
                "%s: lost the pin of group %s; competing for it again", self.durable, self.group
            )
            self.pin_id = None
        # 404/408/409: a request ended; the server says how much of it was left unused.
        try:
            left = int(headers.get(PENDING_MSGS, "0") or 0)
        except ValueError:
            left = 0
        self._credit = max(self._credit - left, 0) if left else 0

    async def next_batch(self, timeout_s: float) -> list[Msg]:
        """Return up to `batch` messages: wait for the first, then take what has arrived."""
        assert self._sub is not None, "bind() first"
        await self._top_up()
        deadline = time.monotonic() + timeout_s
        out: list[Msg] = []
        while not out:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            try:
                first = await self._sub.next_msg(timeout=remaining)
            except NatsTimeoutError:
                return out
            candidates = [first, *take_buffered(self._sub, self.batch + 7)]
            for msg in candidates:
                if is_pull_status(msg):
                    self._settle_status(msg)
                    continue
                self._credit -= 1
                if self.group is not None and msg.headers and PIN_ID in msg.headers:
                    self.pin_id = msg.headers[PIN_ID]
                out.append(msg)
            if not out:
                await self._top_up()
        return out
