"""What `intent list` is asked (`IntentQuery`) and what it answers (`IntentListing`). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts import subjects as s
from contracts import topology as t
from contracts.kinds import Outcome

LISTED_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.FILLED,
    Outcome.REJECTED,
    Outcome.DEAD_LETTERED,
    Outcome.HANDED_OVER,
    Outcome.PENDING,
)

_FORBIDDEN_IN_TOKEN = frozenset(".*> \t\r\n")


class BadFilter(ValueError):
    """A filter that cannot name a subject token (a symbol or account with `.`, `*`, `>`)."""


def subject_token(value: str, what: str) -> str:
    """Return `value` as one subject token, refusing wildcards and separators."""
    if not value or any(c in _FORBIDDEN_IN_TOKEN for c in value):
        raise BadFilter(f"{what} {value!r} cannot be a subject token (no '.', '*', '>', spaces)")
    return value


@dataclass(frozen=True)
class IntentQuery:
    """What `intent list` asks for."""

    since: datetime
    outcome: Outcome | None = None
    symbol: str | None = None
    account: str | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.symbol is not None:
            subject_token(self.symbol, "symbol")
        if self.account is not None:
            subject_token(self.account, "account")
        if self.limit < 1:
            raise BadFilter(f"--limit must be at least 1, got {self.limit}")
        if self.outcome is not None and self.outcome not in LISTED_OUTCOMES:
            raise BadFilter(f"cannot list by outcome {self.outcome}")

    def reads(self) -> tuple[tuple[str, str], ...]:
        """(stream, subject filter) of each read: acceptances, terminal events, dead letters."""
        sym, acct = self.symbol or "*", self.account or "*"
        return (
            (t.INTENTS, s.intent_event(s.INTENT_ACCEPTED, sym, "*")),
            (t.RISK, s.intent_event(s.RISK_REJECTED, sym, "*")),
            (t.ORDERS, s.intent_event(s.ORDER_REJECTED, sym, "*")),
            (t.LEDGER, s.intent_event(s.LEDGER_POSTED, acct, "*")),
            (t.DLQ, f"{s.DLQ}.*.*"),  # dead letters `dlq.<agent>.<id>`, `dlq.retried.<id>`
        )

    def matches(self, row: IntentRow) -> bool:
        return (
            (self.outcome is None or row.outcome == self.outcome)
            and (self.symbol is None or row.symbol == self.symbol)
            and (self.account is None or row.account == self.account)
        )


@dataclass(frozen=True)
class ShownEvent:
    """One event of a listed intent, with who signed it and whether it is trusted."""

    stream: str
    seq: int
    subject: str
    kind: str
    stored_at: datetime
    signer: str | None
    signature: str
    problem: str | None

    @property
    def trusted(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "seq": self.seq,
            "subject": self.subject,
            "kind": self.kind,
            "stored_at": self.stored_at.isoformat(),
            "signer": self.signer,
            "signature": self.signature,
            "trusted": self.trusted,
            "problem": self.problem,
        }


@dataclass
class IntentRow:
    """One listed intent: when it entered, what it asked, how it ended."""

    intent_id: str
    entered_at: datetime
    symbol: str | None
    account: str | None = None
    side: str | None = None
    quantity: str | None = None
    outcome: str = Outcome.PENDING
    reasons: list[str] = field(default_factory=list)
    ended_at: datetime | None = None
    terminals: int = 0
    """Trusted terminal events: more than one is a conflict the audit reports."""
    events: list[ShownEvent] = field(default_factory=list)

    @property
    def untrusted(self) -> list[ShownEvent]:
        return [e for e in self.events if not e.trusted]

    def to_json(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "entered_at": self.entered_at.isoformat(),
            "symbol": self.symbol,
            "account": self.account,
            "side": self.side,
            "quantity": self.quantity,
            "outcome": self.outcome,
            "reasons": self.reasons,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "conflict": self.terminals > 1,
            "trusted": not self.untrusted,
            "events": [e.to_json() for e in self.events],
        }


@dataclass
class IntentListing:
    """The answer of `intent list`."""

    query: IntentQuery
    searched_from: datetime
    """Where the search stopped going back (`query.since` unless the limit was met sooner)."""
    rows: list[IntentRow]
    more: bool
    """More intents in the searched part match than `--limit` shows."""

    def to_json(self) -> dict[str, Any]:
        q = self.query
        return {
            "since": q.since.isoformat(),
            "searched_from": self.searched_from.isoformat(),
            "filters": {"outcome": q.outcome, "symbol": q.symbol, "account": q.account},
            "limit": q.limit,
            "more": self.more,
            "intents": [r.to_json() for r in self.rows],
        }
