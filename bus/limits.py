"""Storage limits: every stream and KV bucket bounded, and room reserved for each (`[storage]`).

Every stream and bucket of the topology gets a byte limit (and an age where history may go), a
discard policy, and nothing else may be created without one. nats-server reserves each stream's
`max_bytes` against the server's `max_file_store` when the stream is created (a stream whose
limit no longer fits is refused with `insufficient storage resources available`), so the server
store is sized here as the sum of the reservations plus headroom: a client flood that fills
SUBMISSIONS, or a poison storm that fills DLQ, stops at those streams' own limits and cannot take
the room of CONTROL, ORDERS or LEDGER, which must never refuse a write.

Discard policy per stream:
- `new` (refuse the write) wherever a message is a record or a unit of work: a full SUBMISSIONS
  refuses the next submission at publish (the client gets `maximum bytes exceeded`, nothing is
  accepted and then lost); a full DLQ refuses a dead letter, and the message stays in its stream
  unacknowledged until there is room (retried, never dropped).
- `old` (drop the oldest) only where old messages are superseded: MARKET ticks, ADVISORIES.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, TypeAdapter, field_validator

from contracts import topology as t

Discard = Literal["old", "new"]
_BYTES: TypeAdapter[ByteSize] = TypeAdapter(ByteSize)


class StreamLimit(BaseModel):
    """The limits of one stream or KV bucket."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: ByteSize
    """Stored bytes at most (`"2GiB"`, `"512MB"` or a number of bytes); reserved on the server."""
    max_age: timedelta = timedelta(0)
    """Messages older than this are removed (`"P30D"`, seconds); 0 keeps them until `max_bytes`."""
    discard: Discard = "new"
    """At `max_bytes`: `new` refuses the write, `old` removes the oldest messages."""


def _limit(max_bytes: str, discard: Discard = "new", days: float = 0) -> StreamLimit:
    return StreamLimit(
        max_bytes=_BYTES.validate_python(max_bytes),
        max_age=timedelta(days=days),
        discard=discard,
    )


def _default_streams() -> dict[str, StreamLimit]:
    return {
        t.SUBMISSIONS: _limit("2GiB", days=30),
        t.INTENTS: _limit("4GiB"),
        t.RISK: _limit("2GiB"),
        t.ORDERS: _limit("2GiB"),
        t.LEDGER: _limit("2GiB"),
        t.MARKET: _limit("2GiB", "old", days=7),
        t.CONTROL: _limit("256MiB"),
        t.DLQ: _limit("1GiB", days=30),
        t.ADVISORIES: _limit("256MiB", "old", days=30),
    }


def _default_buckets() -> dict[str, StreamLimit]:
    return {kv.bucket: _limit("512MiB") for kv in t.KV_BUCKETS}


def _merged(
    given: dict[str, StreamLimit], defaults: dict[str, StreamLimit], what: str
) -> dict[str, StreamLimit]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"[storage.{what}] names {unknown}; known: {sorted(defaults)}")
    return defaults | given


class StorageSettings(BaseModel):
    """Stream and KV bucket limits: `[storage]`, `[storage.streams.<NAME>]`,
    `[storage.buckets.<name>]`.

    A table given for a stream replaces its defaults as a whole. The server's file store is the
    sum of every limit plus `headroom`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    streams: dict[str, StreamLimit] = Field(default_factory=_default_streams)
    buckets: dict[str, StreamLimit] = Field(default_factory=_default_buckets)
    headroom: ByteSize = ByteSize(256 * 1024 * 1024)
    """Store beyond the reservations: consumers' and the server's own state."""
    alert_at_percent: float = Field(default=80.0, gt=0, lt=100)
    """A stream above this share of its `max_bytes` raises `TradeopsStreamNearLimit`."""
    metrics_port: int = Field(default=9106, ge=1, le=65535)
    """Where the embedded stack serves the streams' sizes and limits (`/metrics`, on the
    `health_host`)."""

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, given: dict[str, StreamLimit]) -> dict[str, StreamLimit]:
        return _merged(given, _default_streams(), "streams")

    @field_validator("buckets")
    @classmethod
    def _known_buckets(cls, given: dict[str, StreamLimit]) -> dict[str, StreamLimit]:
        for name, limit in given.items():
            if limit.discard != "new":
                raise ValueError(
                    f"[storage.buckets.{name}] discard must be `new`: a KV bucket "
                    "refuses a put when full rather than lose keys"
                )
        return _merged(given, _default_buckets(), "buckets")

    def stream(self, name: str) -> StreamLimit:
        """Return the limits of stream `name` (a KV bucket's stream `KV_<bucket>` included)."""
        if name.startswith("KV_") and name[3:] in self.buckets:
            return self.buckets[name[3:]]
        return self.streams[name]

    @property
    def reserved_bytes(self) -> int:
        """Bytes the streams and buckets reserve on one server, all together."""
        return sum(int(x.max_bytes) for x in (*self.streams.values(), *self.buckets.values()))

    @property
    def max_file_store(self) -> int:
        """The server's `max_file_store`: every reservation plus the headroom."""
        return self.reserved_bytes + int(self.headroom)
