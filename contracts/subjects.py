"""Every subject name, built in one place.

An intent's events carry the intent id as their last token:
`<kind>.<SYMBOL or ACCOUNT>.<intent id>` (e.g. `intent.accepted.AAPL.<uuid>`), and a dead letter
`dlq.<agent>.<intent id>` (`none` when no id could be read). JetStream's own subject index then
finds one intent's events in any stream without reading the others, whatever the history. The
submission a client publishes stays `intent.submitted.<SYMBOL>`: the client may not know the id
(the ingestor assigns one when none is given); the accepted event and the dead letter name the
submission's stream sequence.
"""

from __future__ import annotations

import uuid

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

INTENT_OUTCOME = "intent.outcome"
"""Core request/reply (never stored): a client asks the outcome of an intent; ops answers."""

MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
DLQ_RETRIED = "dlq.retried"
"""Ops records of `dlq retry` (two tokens: never an agent's `dlq.<agent>.<id>`)."""
DLQ_PURGED = "dlq.purged"
"""Ops records of `dlq purge`."""
NO_INTENT = "none"
"""The intent token of a dead letter whose intent id could not be read."""

INTENT_EVENT_PREFIXES: tuple[str, ...] = (
    INTENT_ACCEPTED,
    INTENT_ANALYZED,
    RISK_APPROVED,
    RISK_REJECTED,
    ORDER_FILLED,
    ORDER_REJECTED,
    LEDGER_POSTED,
)
"""Subjects of the agents' events about one intent: `<prefix>.<SYMBOL or ACCOUNT>.<intent id>`."""


def of(prefix: str, token: str) -> str:
    """Return `<prefix>.<token>`, e.g. `intent.submitted.AAPL`."""
    return f"{prefix}.{token}"


def every(prefix: str) -> str:
    """Return the wildcard for one token under `prefix`, e.g. `intent.submitted.*`."""
    return f"{prefix}.*"


def last_token(subject: str) -> str:
    """Return the last token of a subject (the symbol of a submission or a tick)."""
    return subject.rsplit(".", 1)[-1]


def intent_event(prefix: str, token: str, intent_id: uuid.UUID | str) -> str:
    """Return `<prefix>.<token>.<intent id>`, e.g. `intent.accepted.AAPL.<uuid>`."""
    return f"{prefix}.{token}.{intent_id}"


def intent_events(prefix: str) -> str:
    """Return the wildcard of every intent event under `prefix`: `<prefix>.*.*`."""
    return f"{prefix}.*.*"


def of_intent(intent_id: uuid.UUID | str) -> str:
    """Return the filter of one intent's events in any trail stream: `*.*.*.<intent id>`.

    Every agent's event subject has four tokens (`dlq.<agent>.<id>` three: see `dead_letter`)."""
    return f"*.*.*.{intent_id}"


def event_parts(subject: str) -> tuple[str, str, str] | None:
    """Return (prefix, symbol or account, intent id token) of an intent event's subject."""
    parts = subject.split(".")
    if len(parts) != 4:
        return None
    return f"{parts[0]}.{parts[1]}", parts[2], parts[3]


def names_intent(subject: str, token: str, intent_id: uuid.UUID | str) -> bool:
    """Whether an intent event's subject names this symbol (or account) and this intent."""
    parts = event_parts(subject)
    return parts is not None and parts[1] == token and parts[2] == str(intent_id)


def dead_letter(agent: Identity | str, intent_id: uuid.UUID | str | None) -> str:
    """Return the subject of one dead letter: `dlq.<agent>.<intent id or none>`."""
    return f"{DLQ}.{agent}.{intent_id if intent_id is not None else NO_INTENT}"


def dead_letters(agent: Identity | str) -> str:
    """Return the filter of one agent's dead letters, `dlq.<agent>.*`."""
    return f"{DLQ}.{agent}.*"


def dlq_retried(intent_id: uuid.UUID | str | None) -> str:
    """Return the subject of one `dlq retry` record: `dlq.retried.<intent id or none>`."""
    return f"{DLQ_RETRIED}.{intent_id if intent_id is not None else NO_INTENT}"


def dead_letters_of(intent_id: uuid.UUID | str) -> str:
    """Return the filter of every agent's dead letters of one intent, `dlq.*.<intent id>`."""
    return f"{DLQ}.*.{intent_id}"


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    """Return the server's advisory subject for one consumer's exhausted deliveries."""
    return f"{MAX_DELIVERIES_ADVISORY}.{stream}.{consumer}"


def inbox_prefix(identity: Identity | str) -> str:
    """Return the private reply-inbox prefix of one identity."""
    return f"_INBOX.{identity}"
