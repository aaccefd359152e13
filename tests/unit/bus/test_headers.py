"""bus.headers: which headers of a stored message are the publisher's."""

from __future__ import annotations

from nats.aio.msg import Msg

from bus.headers import (
    MSG_ID,
    PENDING_MESSAGES,
    PIN_ID,
    SEQUENCE,
    SIGNATURE,
    SIGNER,
    STATUS,
    STREAM,
    SUBJECT,
    TIME_STAMP,
    is_pull_status,
    reserved_headers,
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


def _delivery(reply: str, headers: dict[str, str] | None, data: bytes = b"") -> Msg:
    return Msg(None, subject="_INBOX.ingestor.x", reply=reply, data=data, headers=headers)  # type: ignore[arg-type]


def test_a_pull_status_is_what_comes_without_a_reply_subject_whatever_its_headers() -> None:
    assert is_pull_status(_delivery("", {STATUS: "100", "Description": "Idle Heartbeat"}))
    assert is_pull_status(_delivery("", {STATUS: "408", PENDING_MESSAGES: "3"}))
    # a stored message arrives with its ack subject: a client's Status header changes nothing
    ack = "$JS.ACK.SUBMISSIONS.ingestor.1.5.5.0.0"
    assert not is_pull_status(_delivery(ack, {STATUS: "409", PENDING_MESSAGES: "junk"}))
    assert not is_pull_status(_delivery(ack, {STATUS: "100"}, b"{}"))
    assert not is_pull_status(_delivery("", None, b"core message"))


def test_reserved_headers_are_the_servers_names_a_publisher_set() -> None:
    sent = {
        MSG_ID: "id-1",
        "Nats-Expected-Stream": "SUBMISSIONS",
        PIN_ID: "server-added-on-delivery",
        "status": "404",
        "Description": "No Messages",
        SEQUENCE: "1",
        "nats-time-stamp": "x",
        PENDING_MESSAGES: "junk",
        "X-Client": "fine",
    }
    assert reserved_headers(sent) == [
        "status", "Description", SEQUENCE, "nats-time-stamp", PENDING_MESSAGES,
    ]  # fmt: skip
    assert reserved_headers({MSG_ID: "a", "X-Trace": "b"}) == []
    assert reserved_headers(None) == []
