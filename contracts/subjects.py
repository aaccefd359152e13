"""Every subject name, built in one place."""

from __future__ import annotations

from contracts.types import Identity

INTENT_SUBMITTED = "intent.submitted"
INTENT_ACCEPTED = "intent.accepted"
INTENT_ANALYZED = "intent.analyzed"
RISK_APPROVED = "risk.approved"
RISK_REJECTED = "risk.rejected"
ORDER_FILLED = "order.filled"
ORDER_REJECTED = "order.rejected"
LEDGER_POSTED = "ledger.posted"
MARKET_TICK = "market.tick"
DLQ = "dlq"

CONTROL_KILL = "control.kill"
CONTROL_RESUME = "control.resume"
CONTROL_REDUCE = "control.reduce"
CONTROL_ALL = "control.*"
CONTROL_SUBJECTS: tuple[str, ...] = (CONTROL_KILL, CONTROL_RESUME, CONTROL_REDUCE)

MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


def of(prefix: str, token: str) -> str:
    """Return `<prefix>.<token>`, e.g. `intent.submitted.AAPL`."""
    return f"{prefix}.{token}"


def every(prefix: str) -> str:
    """Return the wildcard for one token under `prefix`, e.g. `intent.submitted.*`."""
    return f"{prefix}.*"


def last_token(subject: str) -> str:
    """Return the last token of a subject (the symbol or account)."""
    return subject.rsplit(".", 1)[-1]


def dead_letters(agent: Identity | str) -> str:
    """Return the dead-letter subject of one agent, `dlq.<agent>`."""
    return f"{DLQ}.{agent}"


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    """Return the server's advisory subject for one consumer's exhausted deliveries."""
    return f"{MAX_DELIVERIES_ADVISORY}.{stream}.{consumer}"


def inbox_prefix(identity: Identity | str) -> str:
    """Return the private reply-inbox prefix of one identity."""
    return f"_INBOX.{identity}"
