"""bus.replay's pure parts: a direct-get reply is a stored message only if the server numbered it
(`Nats-Sequence`); a status is told by that header's absence, never by `Status`."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.msg import Msg

from bus.headers import MSG_ID, SEQUENCE, SIGNER, STATUS, STREAM, SUBJECT, TIME_STAMP
from bus.replay import StoredMsg, is_stored, stored


def reply(headers: dict[str, str] | None, data: bytes = b"{}") -> Msg:
    """A direct-get reply as nats-py hands it to the subscription (no client needed to read it)."""
    return Msg(None, subject="_INBOX.ops.x", data=data, headers=headers)  # type: ignore[arg-type]


def test_a_reply_with_nats_sequence_is_a_stored_message() -> None:
    assert is_stored(reply({SEQUENCE: "1"}))


def test_a_server_status_carries_no_sequence_and_is_not_stored() -> None:
    assert not is_stored(reply({STATUS: "204"}, data=b""))
    assert not is_stored(reply({STATUS: "404"}, data=b""))
    assert not is_stored(reply(None, data=b""))


def test_a_stored_message_whose_publisher_set_status_is_still_a_stored_message() -> None:
    # a client may publish any header, Status included; only the server adds Nats-Sequence
    assert is_stored(reply({STATUS: "404", SEQUENCE: "12"}))


def test_stored_reads_the_servers_headers_and_keeps_only_the_publishers() -> None:
    msg = reply(
        {
            STREAM: "ORDERS",
            SEQUENCE: "42",
            SUBJECT: "order.filled.AAPL.x",
            TIME_STAMP: "2025-06-02T10:00:00.123456789Z",
            SIGNER: "executor",
            MSG_ID: "fill-x",
        },
        data=b'{"a": 1}',
    )
    assert stored(msg, "fallback") == StoredMsg(
        stream="ORDERS",
        seq=42,
        subject="order.filled.AAPL.x",
        headers={SIGNER: "executor", MSG_ID: "fill-x"},
        data=b'{"a": 1}',
        time="2025-06-02T10:00:00.123456789Z",
    )


def test_stored_falls_back_to_the_stream_asked_when_the_reply_names_none() -> None:
    assert stored(reply({SEQUENCE: "3"}), "LEDGER").stream == "LEDGER"


def test_timestamp_keeps_microseconds_of_a_nanosecond_server_time() -> None:
    msg = StoredMsg("S", 1, "x", {}, b"", "2025-06-02T10:00:00.123456789Z")
    assert msg.timestamp == datetime(2025, 6, 2, 10, 0, 0, 123456, tzinfo=UTC)


def test_timestamp_of_a_whole_second_or_a_short_fraction() -> None:
    whole = StoredMsg("S", 1, "x", {}, b"", "2025-06-02T10:00:00Z")
    short = StoredMsg("S", 1, "x", {}, b"", "2025-06-02T10:00:00.5Z")
    assert whole.timestamp == datetime(2025, 6, 2, 10, 0, 0, tzinfo=UTC)
    assert short.timestamp == datetime(2025, 6, 2, 10, 0, 0, 500000, tzinfo=UTC)
