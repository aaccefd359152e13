"""Answer clients' `intent.outcome` requests from the one trail reader.

A client asks with an `OutcomeQuery` (its intent id); the answer (`OutcomeAnswer`) is what
`tradeops intent show` would say: the outcome by the audit's rule over signed events found by
subject, and the terminal event's reason codes. Nothing else about the intent (account, prices,
other events) is told: every client shares the `client` identity, and the id, a UUID the client
chose, is what it must know to ask.

Runs with the ops identity (it reads every trail stream) in the embedded stack's process, in the
queue group `outcomes` so several replicas share requests. Hostile input gets an answer with an
`error`, never an exception: a body over `MAX_QUERY_BYTES`, not JSON, no valid id; requests
beyond `MAX_IN_FLIGHT` at once are answered `busy` at once rather than queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from bus import Credentials, connect
from bus.signing import Verifier
from contracts import Identity
from contracts import subjects as s
from contracts.kinds import Outcome
from contracts.outcome import MAX_QUERY_BYTES, OutcomeAnswer, OutcomeQuery
from ops.audit.trail import NotAnIntentId, canonical_intent_id, find_trail

log = logging.getLogger(__name__)

QUEUE_GROUP = "outcomes"
MAX_IN_FLIGHT = 32
LOOKUP_TIMEOUT_S = 5.0


async def answer(nc: NATS, verifier: Verifier, data: bytes) -> OutcomeAnswer:
    """The answer to one request body."""
    if len(data) > MAX_QUERY_BYTES:
        return OutcomeAnswer(error=f"invalid_query: body over {MAX_QUERY_BYTES} bytes")
    try:
        query = OutcomeQuery.model_validate_json(data)
        wanted = canonical_intent_id(query.intent_id)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return OutcomeAnswer(error=f"invalid_query: {where}: {first['msg']}")
    except NotAnIntentId:
        return OutcomeAnswer(error="invalid_query: intent_id is not a UUID")
    try:
        trail = await find_trail(nc, wanted, verifier, timeout_s=LOOKUP_TIMEOUT_S)
    except (TimeoutError, OSError) as exc:
        log.warning("outcome of %s: lookup failed: %s", wanted, exc)
        return OutcomeAnswer(intent_id=wanted, error="unavailable: the store did not answer")
    return OutcomeAnswer(
        intent_id=wanted,
        outcome=Outcome(trail.outcome),
        terminal=trail.terminal,
        reasons=tuple(trail.reasons),
    )


class OutcomeService:
    """The responder: `start` subscribes, `stop` drains what is in flight."""

    def __init__(self, nc: NATS, verifier: Verifier) -> None:
        self.nc = nc
        self.verifier = verifier
        self._sub: Subscription | None = None
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(s.INTENT_OUTCOME, QUEUE_GROUP, cb=self._on_request)

    async def stop(self, close: bool = True) -> None:
        """Stop taking requests, answer those in flight, then close the connection."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if close:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _on_request(self, msg: Msg) -> None:
        if not msg.reply:
            return  # a publish, not a request: nobody to answer
        if self._slots.locked():
            await self._reply(msg.reply, OutcomeAnswer(error="busy: ask again shortly"))
            return
        task = asyncio.create_task(self._serve(msg.reply, msg.data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reply: str, data: bytes) -> None:
        async with self._slots:
            try:
                result = await answer(self.nc, self.verifier, data)
            except Exception:  # a bug must not end the service; the client still hears back
                log.exception("outcome request failed")
                result = OutcomeAnswer(error="unavailable: internal error")
            await self._reply(reply, result)

    async def _reply(self, reply: str, result: OutcomeAnswer) -> None:
        with contextlib.suppress(Exception):  # the requester may be gone
            await self.nc.publish(reply, result.model_dump_json(exclude_none=True).encode())


async def serve(url: str, certs_dir: Path) -> OutcomeService:
    """Connect as ops (reconnecting, as a service should) and start answering."""
    nc = await connect(url, Credentials(Identity.OPS, certs_dir), name="tradeops-outcomes")
    service = OutcomeService(nc, Verifier.from_dir(certs_dir))
    await service.start()
    return service
