"""`tradeops streams`: the server's stream and consumer state beside the topology."""

from __future__ import annotations

from typing import Any

from nats.js.api import ConsumerInfo, StreamInfo

from contracts import topology as t
from ops.cli.streams import age, render, size
from ops.streams import TOPOLOGY_STREAMS, stream_report


def stream_info(name: str, **config: Any) -> StreamInfo:
    return StreamInfo.from_response({
        "config": {"name": name, "subjects": ["risk.>"], "max_bytes": -1, "max_msgs": -1,
                   "max_age": 0, "max_msg_size": -1, "num_replicas": 1, **config},
        "state": {"messages": 12, "bytes": 3 * 1024 * 1024, "first_seq": 3, "last_seq": 14,
                  "consumer_count": 1},
    })  # fmt: skip


def consumer_info(name: str, durable: bool = True) -> ConsumerInfo:
    return ConsumerInfo.from_response({
        "name": name, "stream_name": t.RISK, "created": "2025-06-02T10:00:00Z",
        "config": {"durable_name": name if durable else None, "filter_subject": "risk.>"},
        "delivered": {"consumer_seq": 9, "stream_seq": 14},
        "ack_floor": {"consumer_seq": 7, "stream_seq": 12},
        "num_pending": 0, "num_ack_pending": 2, "num_redelivered": 1, "num_waiting": 1,
    })  # fmt: skip


def test_every_topology_stream_and_kv_bucket_is_reported() -> None:
    assert TOPOLOGY_STREAMS[: len(t.STREAMS)] == tuple(s.name for s in t.STREAMS)
    assert "KV_intents" in TOPOLOGY_STREAMS


def test_a_stream_reports_contents_limits_and_its_consumers() -> None:
    info = stream_info(
        t.RISK, max_bytes=6 * 1024 * 1024, max_age=7 * 86400 * 10**9
    )  # ns on the wire
    report = stream_report(info, t.RISK, [consumer_info("executor"), consumer_info("x", False)])
    assert (report.messages, report.first_seq, report.last_seq) == (12, 3, 14)
    assert report.bytes_used_pct == 50.0
    (executor,) = report.consumers  # the ephemeral one is left out
    assert (executor.owner, executor.ack_pending, executor.redelivered, executor.waiting) == (
        "executor", 2, 1, 1
    )  # fmt: skip
    assert not executor.missing
    line = render([report]).splitlines()[1]
    assert line.split()[:6] == ["RISK", "12", "3.0", "MiB", "6.0", "MiB"]
    assert "50%" in line and "7d" in line and "3..14" in line


def test_missing_streams_and_consumers_and_strangers_are_named() -> None:
    gone = stream_report(None, t.ORDERS, [])
    assert gone.missing and {c.name for c in gone.consumers} == {"ledger", "risk-orders"}
    assert all(c.missing for c in gone.consumers)
    partial = stream_report(stream_info(t.RISK), t.RISK, [consumer_info("old-executor")])
    names = {c.name: c for c in partial.consumers}
    assert names["executor"].missing
    assert not names["old-executor"].in_topology
    text = render([gone, partial])
    assert "ORDERS       MISSING" in text
    assert "consumer old-executor (not in the topology)" in text


def test_sizes_and_ages_read_as_an_operator_writes_them() -> None:
    assert [size(-1), size(512), size(64 * 1024), size(5 * 1024**3)] == [
        "-", "512 B", "64.0 KiB", "5.0 GiB"
    ]  # fmt: skip
    assert [age(0), age(30 * 86400), age(7200), age(90)] == ["-", "30d", "2h", "90s"]
