"""The streams and durable consumers as the server reports them, beside the topology.

For each stream: messages, bytes, limits (max bytes, max age, max messages, max message size)
and its first and last sequence; for each durable consumer: its backlog (pending), what it
holds unacknowledged (ack pending), redeliveries and waiting pull requests. A stream or
consumer the topology declares but the server lacks is reported missing (`tradeops provision`
creates it); one the server has but the topology does not is named as such. Cost: one stream
list and one consumer list per stream, as ops (`$JS.API.STREAM.LIST`, `CONSUMER.LIST`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.client import JetStreamContext

from contracts import topology as t

UNLIMITED = -1

TOPOLOGY_STREAMS: tuple[str, ...] = (
    *(s.name for s in t.STREAMS),
    *(kv.stream for kv in t.KV_BUCKETS),
)
"""Every stream the topology declares: its streams, then its KV buckets' streams."""


@dataclass(frozen=True)
class ConsumerReport:
    """One durable consumer's state."""

    stream: str
    name: str
    owner: str | None
    """The agent that reads it (from the topology); None when the topology has no such consumer."""
    filter_subject: str | None
    pending: int = 0
    """Messages in the stream matching its filter that it has not been delivered yet."""
    ack_pending: int = 0
    """Delivered and not yet acknowledged."""
    redelivered: int = 0
    """Delivered more than once and not yet acknowledged."""
    waiting: int = 0
    """Pull requests waiting for messages (an idle reader has one open)."""
    delivered_seq: int = 0
    ack_floor_seq: int = 0
    missing: bool = False
    """Declared by the topology, absent on the server."""

    @property
    def in_topology(self) -> bool:
        return self.owner is not None


@dataclass(frozen=True)
class StreamReport:
    """One stream's contents and limits, and its durable consumers."""

    name: str
    subjects: tuple[str, ...] = ()
    in_topology: bool = True
    missing: bool = False
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    max_bytes: int = UNLIMITED
    max_age_s: float = 0.0
    """0: no age limit."""
    max_msgs: int = UNLIMITED
    max_msg_size: int = UNLIMITED
    max_msgs_per_subject: int = UNLIMITED
    replicas: int = 1
    consumers: tuple[ConsumerReport, ...] = field(default_factory=tuple)

    @property
    def bytes_used_pct(self) -> float | None:
        """Share of `max_bytes` in use; None when the stream has no byte limit."""
        return 100.0 * self.bytes / self.max_bytes if self.max_bytes > 0 else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["subjects"] = list(self.subjects)
        doc["bytes_used_pct"] = self.bytes_used_pct
        doc["consumers"] = [{**asdict(c), "in_topology": c.in_topology} for c in self.consumers]
        return doc


def _limit(value: int | None) -> int:
    return UNLIMITED if value is None or value <= 0 else value


def stream_report(
    info: StreamInfo | None, name: str, consumers: list[ConsumerInfo]
) -> StreamReport:
    """Return the report of one stream from the server's answer (None: the server lacks it)."""
    declared = {c.durable: c for c in t.ALL_CONSUMERS if c.stream == name}
    in_topology = name in TOPOLOGY_STREAMS
    if info is None:
        missing = tuple(
            ConsumerReport(name, c.durable, str(c.owner), c.filter_subject, missing=True)
            for c in declared.values()
        )
        return StreamReport(name, in_topology=in_topology, missing=True, consumers=missing)
    config, state = info.config, info.state
    seen: list[ConsumerReport] = []
    for c in consumers:
        if not c.config.durable_name:
            continue  # ephemeral: an operator's one-off read, not part of the system
        spec = declared.get(c.name)
        seen.append(
            ConsumerReport(
                name,
                c.name,
                str(spec.owner) if spec else None,
                c.config.filter_subject,
                pending=c.num_pending or 0,
                ack_pending=c.num_ack_pending or 0,
                redelivered=c.num_redelivered or 0,
                waiting=c.num_waiting or 0,
                delivered_seq=c.delivered.stream_seq if c.delivered else 0,
                ack_floor_seq=c.ack_floor.stream_seq if c.ack_floor else 0,
            )
        )
    present = {c.name for c in seen}
    seen += [
        ConsumerReport(name, c.durable, str(c.owner), c.filter_subject, missing=True)
        for c in declared.values()
        if c.durable not in present
    ]
    return StreamReport(
        name,
        subjects=tuple(config.subjects or ()),
        in_topology=in_topology,
        messages=state.messages,
        bytes=state.bytes,
        first_seq=state.first_seq,
        last_seq=state.last_seq,
        max_bytes=_limit(config.max_bytes),
        max_age_s=float(config.max_age or 0.0),
        max_msgs=_limit(config.max_msgs),
        max_msg_size=_limit(config.max_msg_size),
        max_msgs_per_subject=_limit(config.max_msgs_per_subject),
        replicas=config.num_replicas or 1,
        consumers=tuple(sorted(seen, key=lambda c: c.name)),
    )


async def collect_streams(js: JetStreamContext) -> list[StreamReport]:
    """Return every stream of the topology (missing ones too), then any other on the server."""
    infos = {info.config.name: info for info in await js.streams_info() if info.config.name}
    names = [*TOPOLOGY_STREAMS, *sorted(set(infos) - set(TOPOLOGY_STREAMS))]
    lists = await asyncio.gather(
        *(js.consumers_info(name) if name in infos else _nothing() for name in names)
    )
    return [
        stream_report(infos.get(name), name, consumers)
        for name, consumers in zip(names, lists, strict=True)
    ]


async def _nothing() -> list[ConsumerInfo]:
    return []
