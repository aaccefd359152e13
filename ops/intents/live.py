"""`intent watch`: every intent event as it is published, with its producer and signature.

Follows `intent.>`, `risk.>`, `order.>`, `ledger.>` and `dlq.>` on core NATS as ops (nothing is
stored or acknowledged). The kind, symbol and intent come from the subject; who published it
from the signature, checked against the subject's owner (`ops.audit.policy`), as the audit
does. A submission's subject names no intent: its id is the one the client's payload claims.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bus.signing import SignatureStatus, Verifier
from contracts import subjects as s
from contracts.kinds import DEAD_LETTER, POSTED, SUBMITTED, kind_of
from ops.audit.facts import as_uuid
from ops.audit.policy import Provenance, provenance_problem
from ops.intents.query import subject_token

WATCHED: tuple[str, ...] = ("intent.>", "risk.>", "order.>", "ledger.>", "dlq.>")


@dataclass(frozen=True)
class LiveEvent:
    """One event as `intent watch` prints it."""

    received_at: datetime
    subject: str
    kind: str
    symbol: str | None
    account: str | None
    intent_id: str | None
    producer: str
    signature: str
    problem: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at.isoformat(),
            "subject": self.subject,
            "kind": self.kind,
            "symbol": self.symbol,
            "account": self.account,
            "intent_id": self.intent_id,
            "producer": self.producer,
            "signature": self.signature,
            "trusted": self.problem is None,
            "problem": self.problem,
        }


def describe_live(
    subject: str,
    data: bytes,
    headers: dict[str, str] | None,
    verifier: Verifier,
    received_at: datetime,
) -> LiveEvent:
    """Describe one live message: kind and intent from its subject, trust from its signature."""
    kind = kind_of(subject)
    try:
        loaded = json.loads(data)
    except (ValueError, RecursionError):
        loaded = None
    body: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    status, signer = verifier.check(subject, data, headers)
    signed = status is not SignatureStatus.MISSING
    producer = body.get("producer") if isinstance(body.get("producer"), str) else None
    problem = provenance_problem(Provenance(subject, status if signed else None, signer, producer))
    tokens = subject.split(".")
    symbol = account = None
    if kind == SUBMITTED:  # no id on the subject: the id the client's payload names, if any
        symbol, intent_id = s.last_token(subject), as_uuid(body.get("intent_id"))
    elif kind == DEAD_LETTER or tokens[0] == s.DLQ:
        origin = str(body.get("original_subject", "")).split(".")
        symbol = origin[2] if len(origin) >= 3 and origin[0] != "ledger" else None
        intent_id = as_uuid(tokens[-1])
    else:
        parts = s.event_parts(subject)
        token = parts[1] if parts else None
        symbol, account = (None, token) if kind == POSTED else (token, None)
        intent_id = as_uuid(parts[2]) if parts else None
    producer_shown = (signer if signed else None) or ("client" if kind == SUBMITTED else "-")
    return LiveEvent(received_at, subject, kind, symbol, account, intent_id, producer_shown,
                     str(status) if signed else "unsigned", problem)  # fmt: skip


class SymbolFilter:
    """Keeps the events of one symbol, and the postings and dead letters of its intents."""

    def __init__(self, symbol: str, remember: int = 100_000) -> None:
        self.symbol = symbol
        self.remember = remember
        self._ids: dict[str, None] = {}

    def keep(self, event: LiveEvent) -> bool:
        if event.symbol == self.symbol:
            if event.intent_id is not None:
                self._ids[event.intent_id] = None
                while len(self._ids) > self.remember:
                    del self._ids[next(iter(self._ids))]
            return True
        return event.symbol is None and event.intent_id in self._ids


async def watch(
    nc: NATS,
    verifier: Verifier,
    on_event: Callable[[LiveEvent], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    symbol: str | None = None,
) -> None:
    """Describe every intent event published until `stop` is set (or the connection closes)."""
    keep = SymbolFilter(subject_token(symbol, "symbol")).keep if symbol else None

    async def on_msg(msg: Msg) -> None:
        event = describe_live(msg.subject, msg.data, msg.headers, verifier, datetime.now(UTC))
        if keep is None or keep(event):
            done = on_event(event)
            if done is not None:
                await done

    subs = [await nc.subscribe(subject, cb=on_msg) for subject in WATCHED]
    try:
        while not stop.is_set() and not nc.is_closed:
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                continue
    finally:
        if not nc.is_closed:
            for sub in subs:
                await sub.unsubscribe()
