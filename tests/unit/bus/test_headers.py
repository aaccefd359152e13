"""bus.headers: which headers of a stored message are the publisher's."""

from __future__ import annotations

from bus.headers import (
    MSG_ID,
    PIN_ID,
    SEQUENCE,
    SIGNATURE,
    SIGNER,
    STATUS,
    STREAM,
    SUBJECT,
    TIME_STAMP,
    stored_headers,
)


def test_stored_headers_drop_the_servers_reply_headers_and_keep_the_publishers() -> None:
    reply = {
        STREAM: "INTENTS",
        SEQUENCE: "7",
        SUBJECT: "intent.accepted.AAPL.x",
        TIME_STAMP: "2025-06-02T10:00:00Z",
        SIGNER: "ingestor",
        SIGNATURE: "c2ln",
        "X-Custom": "kept",
    }
    assert stored_headers(reply) == {SIGNER: "ingestor", SIGNATURE: "c2ln", "X-Custom": "kept"}


def test_stored_headers_keep_the_message_id_the_publisher_chose() -> None:
    assert stored_headers({MSG_ID: "abc", SEQUENCE: "1"}) == {MSG_ID: "abc"}


def test_stored_headers_drop_any_nats_header_not_only_the_known_ones() -> None:
    assert stored_headers({PIN_ID: "p", "Nats-Future-Header": "1", STATUS: "404"}) == {
        STATUS: "404"
    }


def test_stored_headers_of_nothing_is_nothing() -> None:
    assert stored_headers({}) == {}


def test_the_header_names_are_the_ones_nats_server_sends() -> None:
    assert (MSG_ID, STATUS, SEQUENCE, PIN_ID) == (
        "Nats-Msg-Id",
        "Status",
        "Nats-Sequence",
        "Nats-Pin-Id",
    )
