"""Find every event of one intent across the streams, and its terminal outcome."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from bus.publisher import INTENT_HEADER
from bus.replay import StoredMsg, read_stream
from bus.signing import SIGNER_HEADER, SignatureStatus, Verifier
from contracts import AGENTS
from contracts import topology as t

AGENT_NAMES = frozenset(str(a) for a in AGENTS)
TRAIL_STREAMS = (t.SUBMISSIONS, t.INTENTS, t.RISK, t.ORDERS, t.LEDGER, t.DLQ)


@dataclass
class TrailEvent:
    stream: str
    seq: int
    subject: str
    kind: str
    producer: str
    stored_at: datetime
    body: dict[str, Any]
    signature: str = "unchecked"


@dataclass
class Trail:
    intent_id: str
    events: list[TrailEvent] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        kinds = {e.kind for e in self.events}
        if "ledger.posted" in kinds or "order.filled" in kinds:
            return "filled"
        if "risk.rejected" in kinds or "order.rejected" in kinds:
            return "rejected"
        if "dead_letter" in kinds:
            return "dead_lettered"
        return "pending" if self.events else "unknown"

    @property
    def terminal(self) -> bool:
        kinds = {e.kind for e in self.events}
        return bool(kinds & {"ledger.posted", "risk.rejected", "order.rejected", "dead_letter"})

    @property
    def reasons(self) -> list[str]:
        out: list[str] = []
        for e in self.events:
            if e.kind == "risk.rejected":
                out += [str(r) for r in e.body.get("reasons", [])]
            elif e.kind in {"order.rejected", "dead_letter"}:
                out.append(str(e.body.get("reason")))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "outcome": self.outcome,
            "reasons": self.reasons,
            "events": [
                {
                    "stream": e.stream,
                    "seq": e.seq,
                    "subject": e.subject,
                    "kind": e.kind,
                    "producer": e.producer,
                    "stored_at": e.stored_at.isoformat(),
                    "signature": e.signature,
                    "body": e.body,
                }
                for e in self.events
            ],
        }


def kind_of_subject(subject: str) -> str:
    """The event kind a subject carries; subjects, unlike headers, are bound to their publishers."""
    head, _, rest = subject.partition(".")
    if head == "dlq":  # dlq.<agent> holds dead letters; dlq.retried / dlq.purged, ops records
        return "dead_letter" if rest in AGENT_NAMES else f"dead_letter.{rest}"
    return ".".join(subject.split(".")[:2])


def _belongs(msg: StoredMsg, intent_id: str) -> bool:
    if msg.headers.get(INTENT_HEADER) == intent_id:
        return True
    if msg.subject.startswith("intent.submitted."):
        try:
            body = json.loads(msg.data)
            return isinstance(body, dict) and str(body.get("intent_id")) == intent_id
        except ValueError:
            return False
    return False


async def find_trail(
    nc: NATS, intent_id: uuid.UUID | str, verifier: Verifier | None = None
) -> Trail:
    """Return every stored event of `intent_id` in stream order, with signature status."""
    wanted = str(intent_id)
    trail = Trail(wanted)
    for stream in TRAIL_STREAMS:
        async for msg in read_stream(nc, stream):
            if not _belongs(msg, wanted):
                continue
            try:
                body = json.loads(msg.data)
            except ValueError:
                body = {"raw_b64": base64.b64encode(msg.data).decode()}
            kind = kind_of_subject(msg.subject)
            status = "unsigned"
            if verifier is not None and msg.headers.get(SIGNER_HEADER):
                checked, _signer = verifier.check(msg.subject, msg.data, msg.headers)
                status = str(checked)
            elif verifier is not None:
                status = str(SignatureStatus.MISSING)
            trail.events.append(
                TrailEvent(
                    stream=stream,
                    seq=msg.seq,
                    subject=msg.subject,
                    kind=kind,
                    producer=msg.headers.get(SIGNER_HEADER, "client"),
                    stored_at=msg.timestamp,
                    body=body if isinstance(body, dict) else {"value": body},
                    signature=status,
                )
            )
    trail.events.sort(key=lambda e: e.stored_at)
    return trail
