"""Publish signed events asynchronously, each with a de-duplication id."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bus.headers import INTENT as INTENT_HEADER
from bus.headers import KIND as KIND_HEADER
from bus.headers import MSG_ID as MSG_ID_HEADER
from bus.signing import Signer
from contracts import Envelope


@dataclass(frozen=True)
class Emit:
    """One event to publish on one subject."""

    subject: str
    event: Envelope

    @property
    def msg_id(self) -> str:
        """The de-duplication id: the event id, derived from (intent id, kind) for intents."""
        return str(self.event.event_id)


class PublishFailed(Exception):
    """A publish was not acknowledged by the stream in time."""


class Publisher:
    """Signs and publishes events as one identity."""

    def __init__(self, js: JetStreamContext, signer: Signer, ack_timeout_s: float = 10.0) -> None:
        self.js = js
        self.signer = signer
        self.ack_timeout_s = ack_timeout_s

    def encode(self, emit: Emit) -> tuple[bytes, dict[str, str]]:
        """Return the payload and the headers (de-duplication id, kind, signature)."""
        payload = emit.event.model_dump_json().encode()
        headers = self.signer.headers(emit.subject, payload)
        headers[MSG_ID_HEADER] = emit.msg_id
        headers[KIND_HEADER] = emit.event.kind
        intent_id = getattr(emit.event, "intent_id", None)
        if intent_id is not None:
            headers[INTENT_HEADER] = str(intent_id)
        return payload, headers

    async def start(self, emit: Emit) -> asyncio.Future[PubAck]:
        """Send one event; return the future of its publish acknowledgement."""
        payload, headers = self.encode(emit)
        try:
            return await self.js.publish_async(emit.subject, payload, headers=headers)
        except MaxPayloadError as exc:  # settle() reports it as not acknowledged
            failed: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
            failed.set_exception(PublishFailed(f"{emit.subject}: {exc!r}"))
            return failed

    async def settle(self, futures: Sequence[asyncio.Future[PubAck]]) -> list[bool]:
        """Wait for acknowledgements; return which succeeded. Late ones are cancelled."""
        if not futures:
            return []
        done, pending = await asyncio.wait(futures, timeout=self.ack_timeout_s)
        for fut in pending:
            fut.cancel()  # releases nats-py's pending-publish slot
        return [f in done and not f.cancelled() and f.exception() is None for f in futures]

    async def publish(self, emits: Sequence[Emit]) -> None:
        """Publish and wait for every acknowledgement, or raise PublishFailed."""
        futures = [await self.start(e) for e in emits]
        results = await self.settle(futures)
        failed = [e.subject for e, ok in zip(emits, results, strict=True) if not ok]
        if failed:
            raise PublishFailed(f"no publish acknowledgement for {failed}")
