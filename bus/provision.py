"""Provision the topology as ops: idempotent create-or-update of streams, consumers, KV buckets."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from pydantic import ByteSize

from bus.limits import StorageSettings, StreamLimit
from contracts import topology as t

log = logging.getLogger("tradeops.provision")

INSUFFICIENT_RESOURCES = 10047
DEFAULT_STORAGE = StorageSettings()
SCRATCH_LIMIT = StreamLimit(max_bytes=ByteSize(1 << 30))


class LimitsRefused(Exception):
    """The configured limits do not fit the stored data or the server's store: nothing changed."""


@dataclass
class ProvisionReport:
    """What a provisioning run created or updated."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Durable consumers on the topology's streams that the topology no longer has (left by an
    older version): with what they still hold, so an operator drains or deletes them knowingly."""


def stream_config(
    spec: t.StreamSpec, replicas: int, limit: StreamLimit | None = None
) -> js_api.StreamConfig:
    """Return the server's configuration of `spec` with its limits (the defaults when None).

    A stream outside the topology (a benchmark's) gets a 1 GiB limit unless one is given."""
    limit = limit or DEFAULT_STORAGE.streams.get(spec.name) or SCRATCH_LIMIT
    age_s = limit.max_age.total_seconds() or spec.max_age_s
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        retention=js_api.RetentionPolicy(str(spec.retention)),
        storage=js_api.StorageType(str(spec.storage)),
        duplicate_window=spec.duplicate_window_s,
        max_age=age_s or None,
        max_bytes=int(limit.max_bytes),
        discard=js_api.DiscardPolicy(limit.discard),
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_msg_size=spec.max_msg_size,
        num_replicas=replicas,
        allow_direct=True,
        deny_delete=False,
    )


@dataclass
class PinnedConsumerConfig(js_api.ConsumerConfig):
    """nats-py's consumer config with the priority-group fields it lacks (nats-server >= 2.11)."""

    priority_policy: str | None = None
    priority_groups: list[str] | None = None
    priority_timeout: int | None = None
    """Nanoseconds, as the server takes it."""


def consumer_config(spec: t.ConsumerSpec) -> js_api.ConsumerConfig:
    return PinnedConsumerConfig(
        durable_name=spec.durable,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=spec.filter_subject,
        max_waiting=512,
        priority_policy="pinned_client" if spec.pinned_group else None,
        priority_groups=[spec.pinned_group] if spec.pinned_group else None,
        priority_timeout=int(spec.pin_ttl_s * 1e9) if spec.pinned_group else None,
    )


def _refused(name: str, exc: APIError, storage: StorageSettings) -> LimitsRefused:
    if exc.err_code == INSUFFICIENT_RESOURCES:
        return LimitsRefused(
            f"stream {name}: the server has no room left to reserve its limit (the limits of "
            f"[storage] total {storage.reserved_bytes:,} bytes): raise the server's "
            "max_file_store (regenerate its configuration) or lower [storage] limits"
        )
    return LimitsRefused(f"stream {name}: {exc.description or exc}")


async def _ensure_stream(
    js: JetStreamContext,
    config: js_api.StreamConfig,
    storage: StorageSettings,
    report: ProvisionReport,
) -> None:
    name = str(config.name)
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except APIError as exc:
            raise _refused(name, exc, storage) from exc
        report.created.append(f"stream {name}")
        return
    held = info.state.bytes
    if config.max_bytes is not None and 0 <= config.max_bytes < held:
        # Lowering a limit below what is stored would make the server drop history at once.
        raise LimitsRefused(
            f"stream {name} holds {held:,} bytes, more than its configured max_bytes "
            f"{config.max_bytes:,}: raise [storage.streams.{name}] max_bytes (or remove what it "
            "holds knowingly) before provisioning"
        )
    # An update, never an add: nats-server checks an add of an existing stream's limits as a new
    # reservation on top of the one it holds (refused once the store is mostly reserved).
    try:
        after = await js.update_stream(config)
    except APIError as exc:
        raise _refused(name, exc, storage) from exc
    changed = after.config != info.config
    (report.updated if changed else report.unchanged).append(f"stream {name}")


async def _ensure_consumer(
    js: JetStreamContext, spec: t.ConsumerSpec, report: ProvisionReport
) -> None:
    try:
        await js.consumer_info(spec.stream, spec.durable)
        existed = True
    except NotFoundError:
        existed = False
    # A durable create with editable fields changed is an update on nats-server >= 2.9.
    await js.add_consumer(spec.stream, consumer_config(spec))
    (report.updated if existed else report.created).append(f"consumer {spec.stream}/{spec.durable}")


async def _ensure_kv(
    js: JetStreamContext,
    spec: t.KvSpec,
    replicas: int,
    storage: StorageSettings,
    report: ProvisionReport,
) -> None:
    limit = storage.buckets[spec.bucket]
    try:
        await js.key_value(spec.bucket)
    except (BucketNotFoundError, NotFoundError):
        try:
            await js.create_key_value(
                js_api.KeyValueConfig(
                    bucket=spec.bucket,
                    description=spec.description or None,
                    history=spec.history,
                    storage=js_api.StorageType.FILE,
                    replicas=replicas,
                    direct=True,
                    max_bytes=int(limit.max_bytes),
                    ttl=limit.max_age.total_seconds() or None,
                )
            )
        except APIError as exc:
            raise _refused(spec.stream, exc, storage) from exc
        report.created.append(f"kv {spec.bucket}")
        return
    # A bucket is a stream: its limits change like any stream's (a KV keeps `discard: new`).
    info = await js.stream_info(spec.stream)
    config = info.config
    wanted_age = limit.max_age.total_seconds() or None
    if config.max_bytes == int(limit.max_bytes) and (config.max_age or None) == wanted_age:
        report.unchanged.append(f"kv {spec.bucket}")
        return
    config.max_bytes = int(limit.max_bytes)
    config.max_age = wanted_age
    await _ensure_stream(js, config, storage, report)


async def _find_stale(js: JetStreamContext, report: ProvisionReport) -> None:
    known = {(c.stream, c.durable) for c in t.ALL_CONSUMERS}
    for stream in t.STREAMS:
        for info in await js.consumers_info(stream.name):
            if (stream.name, info.name) in known or not info.config.durable_name:
                continue
            pending = (info.num_pending or 0) + (info.num_ack_pending or 0)
            report.stale.append(f"consumer {stream.name}/{info.name} ({pending} unprocessed)")
            log.warning(
                "consumer %s/%s is not in the topology and holds %d unprocessed messages: "
                "drain it with the version that created it, or delete it",
                stream.name,
                info.name,
                pending,
            )


async def provision(
    js: JetStreamContext, replicas: int = 1, storage: StorageSettings = DEFAULT_STORAGE
) -> ProvisionReport:
    """Create or update every stream, consumer and KV bucket of the topology, with its limits.

    Raises `LimitsRefused` when a configured limit is below what a stream already holds or the
    server cannot reserve it; streams provisioned before it keep their new limits.
    """
    report = ProvisionReport()
    for stream in t.STREAMS:
        config = stream_config(stream, replicas, storage.stream(stream.name))
        await _ensure_stream(js, config, storage, report)
    for kv in t.KV_BUCKETS:
        await _ensure_kv(js, kv, replicas, storage, report)
    for consumer in t.ALL_CONSUMERS:
        await _ensure_consumer(js, consumer, report)
    await _find_stale(js, report)
    log.info(
        "provisioned: %d created, %d updated, %d unchanged",
        len(report.created),
        len(report.updated),
        len(report.unchanged),
    )
    return report
