"""Every header and server status tradeops reads or writes, in one place.

nats-py's own `Header` and `StatusCode` enums are used where they name one; the rest are the
server's direct-get reply headers and tradeops' own. A header is data its sender chose: only
where the server alone can have produced a message (a direct-get reply's `Nats-Sequence`, a
pull status without a reply subject) may a `Status` be believed.
"""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js.api import Header, StatusCode

STATUS = Header.STATUS.value
MSG_ID = Header.MSG_ID.value
"""The publisher's de-duplication id (`Nats-Msg-Id`)."""

# the server's headers on a direct-get reply (never set by a publisher on a stored message)
STREAM = "Nats-Stream"
SEQUENCE = "Nats-Sequence"
SUBJECT = "Nats-Subject"
TIME_STAMP = "Nats-Time-Stamp"
NUM_PENDING = "Nats-Num-Pending"
LAST_SEQUENCE = "Nats-Last-Sequence"
# the server's headers on pull-consumer statuses and deliveries
PENDING_MESSAGES = "Nats-Pending-Messages"
PENDING_BYTES = "Nats-Pending-Bytes"
PIN_ID = "Nats-Pin-Id"

# server statuses (the `Status` of a message the server built)
NO_MESSAGES = StatusCode.NO_MESSAGES.value
REQUEST_TIMEOUT = StatusCode.REQUEST_TIMEOUT.value
CONFLICT = StatusCode.CONFLICT.value
CONTROL_MESSAGE = StatusCode.CONTROL_MESSAGE.value
SERVICE_UNAVAILABLE = StatusCode.SERVICE_UNAVAILABLE.value
END_OF_BATCH = "204"
"""Closes a batched direct get."""
PIN_MISMATCH = "423"
"""A pull request named a pin id the consumer no longer has."""

# tradeops' own
KIND = "Tradeops-Kind"
"""The event's kind (informational: readers take the kind from the subject)."""
INTENT = "Tradeops-Intent-Id"
"""The event's intent (informational: readers take the intent from the subject's last token)."""
SIGNER = "Tradeops-Signer"
SIGNATURE = "Tradeops-Signature"
DLQ_RETRY = "Tradeops-Dlq-Retry"
"""On a re-published message: the DLQ sequence of the dead letter it retries."""


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    """Return a stored message's publisher headers: no `Nats-*` header but the message id."""
    return {k: v for k, v in headers.items() if not k.startswith("Nats-") or k == MSG_ID}


DESCRIPTION = "Description"
"""The text of a server status."""
PUBLISH_HEADERS = frozenset(
    {
        MSG_ID,
        "Nats-Expected-Stream",
        "Nats-Expected-Last-Sequence",
        "Nats-Expected-Last-Subject-Sequence",
        "Nats-Expected-Last-Msg-Id",
    }
)
"""The `Nats-` headers a publisher may set: instructions to the server on publish."""


def is_pull_status(msg: Msg) -> bool:
    """Whether a message on a pull subscription's inbox is the server's status (a heartbeat, a
    request's end, a lost pin) rather than a stored message. The server sends a stored message
    with a reply subject (its ack subject) and a status without one; a `Status` header alone
    proves nothing, since any publisher may set it."""
    return not msg.reply and STATUS in (msg.headers or {})


def reserved_headers(headers: dict[str, str] | None) -> list[str]:
    """The server's header names a publisher set on a message (`Status`, `Description`, any
    `Nats-` header but the publish instructions), in the order given; a delivery's `Nats-Pin-Id`
    is the server's and not counted."""
    found = []
    for name in headers or {}:
        folded = name.lower()
        server = folded.startswith("nats-") and name not in PUBLISH_HEADERS and name != PIN_ID
        if server or folded in ("status", "description"):
            found.append(name)
    return found
