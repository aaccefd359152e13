"""The ingestor: validate, de-duplicate and enrich submitted intents; run the market feed.

Settlement per submission:
- invalid JSON or fields, subject/symbol mismatch, unknown symbol or account -> dead letter;
- an `intent_id` that is a submission's public name (`contracts.base.submission_ref`) -> dead
  letter `reserved_intent_id`: no client may claim the name of another's submission;
- the same intent id already accepted with the same content -> acknowledged, nothing emitted;
- the same intent id with different content -> dead letter `intent_id_conflict`;
- otherwise `intent.accepted.<SYMBOL>` with the latest price attached.

De-duplication lasts forever, not only for the stream's duplicate window: the intent id is
claimed in the `intents` KV bucket (create fails if the key exists). The claim stores the
submission's stream sequence, so a redelivery of the claiming message re-emits its event. A
submission without an id gets one only the ingestor can compute (`agents.ingestor.ids`), the same
on every delivery; its acceptance records `submission_seq`, by which the audit joins the two.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Coroutine, Sequence
from decimal import Decimal
from typing import Any

from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agents.base import Agent, Worker
from agents.common.prices import PriceBook
from agents.ingestor.feed import quotes, tick_of
from agents.ingestor.ids import assigned_intent_id, load_assignment_key
from agents.ingestor.metrics import DEDUPLICATED
from bus import Delivery, Emit, Outcome, Rejected
from bus.headers import PUBLISH_HEADERS, reserved_headers
from contracts import (
    MAX_INTENT_BYTES,
    Identity,
    IntentAccepted,
    SubmitIntent,
    TradeIntent,
    parse,
)
from contracts import subjects as s
from contracts import topology as t
from contracts.base import is_submission_ref

log = logging.getLogger("tradeops.ingestor")


def decode_submission(msg: Msg) -> SubmitIntent:
    reserved = reserved_headers(msg.headers)
    if reserved:
        raise Rejected(
            "reserved_header",
            f"the submission sets the server's header(s) {', '.join(reserved)[:200]}; a client "
            f"may set only {', '.join(sorted(PUBLISH_HEADERS))}",
        )
    intent = parse(SubmitIntent, msg.data, max_bytes=MAX_INTENT_BYTES)
    if intent.intent_id is not None and is_submission_ref(intent.intent_id):
        raise Rejected(
            "reserved_intent_id",
            f"intent_id {intent.intent_id} is reserved: it names a submission by its stream "
            "sequence; send a UUID of your own (uuid4), or none",
        )
    if s.last_token(msg.subject) != intent.symbol:
        raise Rejected(
            "subject_mismatch",
            f"published on {msg.subject} but the payload's symbol is {intent.symbol}; "
            f"publish on {s.of(s.INTENT_SUBMITTED, intent.symbol)}",
        )
    return intent


DECIMAL_FIELDS = ("quantity", "limit_price")
"""A submission's decimals (validated decimal strings), compared by value."""


def content_hash(intent: SubmitIntent) -> str:
    """The digest of what the intent asks, by value: `"0.50"` and `"0.5"` are one quantity, so a
    resent intent is a duplicate, not a conflict."""
    body = {
        name: format(Decimal(value).normalize(), "f") if name in DECIMAL_FIELDS and value else value
        for name, value in intent.model_dump(exclude={"intent_id"}).items()
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Ingestor(Agent):
    identity = Identity.INGESTOR
    verify_inputs = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prices = PriceBook()
        self._claims: KeyValue | None = None
        self._assignment_key: bytes | None = None

    async def open(self) -> None:
        self._assignment_key = load_assignment_key(self.credentials.signing_key_file)
        self._claims = await self.js.key_value("intents")
        await self.prices.follow(self.nc, [i.symbol for i in self.settings.instruments])

    async def not_ready(self) -> list[str]:
        return [] if self._claims is not None else ["intents bucket: not bound"]

    def workers(self) -> Sequence[Worker]:
        return [Worker(t.consumer("ingestor"), decode_submission, self.handle)]

    def background(self) -> Sequence[Coroutine[Any, Any, None]]:
        return [self.run_feed()]

    # -- the handler -----------------------------------------------------------------------

    async def handle(self, items: Sequence[Delivery[SubmitIntent]]) -> Sequence[Outcome]:
        return await asyncio.gather(*(self._one(item) for item in items), return_exceptions=True)

    async def _one(self, item: Delivery[SubmitIntent]) -> Sequence[Emit]:
        submitted = item.value
        if self.settings.instrument(submitted.symbol) is None:
            known = ", ".join(i.symbol for i in self.settings.instruments)
            raise Rejected("unknown_symbol", f"{submitted.symbol} is not traded here ({known})")
        if self.settings.account(submitted.account) is None:
            raise Rejected("unknown_account", f"account {submitted.account!r} does not exist")
        assert self._assignment_key is not None
        assigned = assigned_intent_id(self._assignment_key, item.stream_seq)
        intent = TradeIntent.from_submission(submitted, assigned)
        if not await self._claim(intent.intent_id, content_hash(submitted), item.stream_seq):
            DEDUPLICATED.inc()
            return []
        tick = self.prices.get(intent.symbol)
        event = IntentAccepted.derive(
            intent_id=intent.intent_id,
            producer=self.identity,
            causation_id=None,
            intent=intent,
            reference_price=tick.price if tick else None,
            reference_price_ts=tick.observed_at if tick else None,
            submission_seq=item.stream_seq,
        )
        return [Emit(s.intent_event(s.INTENT_ACCEPTED, intent.symbol, intent.intent_id), event)]

    async def _claim(self, intent_id: uuid.UUID, digest: str, stream_seq: int) -> bool:
        """Claim the id; True if this submission owns it (first seen, or its own redelivery)."""
        assert self._claims is not None
        record = json.dumps({"hash": digest, "seq": stream_seq}).encode()
        try:
            await self._claims.create(str(intent_id), record)
            return True
        except KeyWrongLastSequenceError:
            pass
        entry = await self._claims.get(str(intent_id))
        stored = json.loads(entry.value or b"{}")
        if stored.get("seq") == stream_seq:
            return True  # our own earlier attempt: emit again, the server de-duplicates
        if stored.get("hash") != digest:
            raise Rejected(
                "intent_id_conflict",
                f"intent {intent_id} was already submitted with different content; "
                "use a new intent_id for a new intent",
            )
        return False

    # -- the market feed -------------------------------------------------------------------

    async def run_feed(self) -> None:
        async for batch in quotes(self.settings.feed, self.settings.instruments):
            ticks = [tick_of(q) for q in batch]
            for tick in ticks:
                self.prices.update(tick)
            try:
                await self.publisher.publish(
                    [Emit(s.of(s.MARKET_TICK, tick.symbol), tick) for tick in ticks]
                )
            except Exception as exc:  # a missed tick is replaced by the next one
                log.warning("market tick not published: %r", exc)
