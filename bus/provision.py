"""Provision the topology as ops: idempotent create-or-update of streams, consumers, KV buckets."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError

from contracts import topology as t

log = logging.getLogger("tradeops.provision")

STREAM_NAME_IN_USE = 10058


@dataclass
class ProvisionReport:
    """What a provisioning run created or updated."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    """Durable consumers on the topology's streams that the topology no longer has (left by an
    older version): with what they still hold, so an operator drains or deletes them knowingly."""


def stream_config(spec: t.StreamSpec, replicas: int) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description or None,
        subjects=list(spec.subjects),
        retention=js_api.RetentionPolicy(str(spec.retention)),
        storage=js_api.StorageType(str(spec.storage)),
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s or None,
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


async def _ensure_stream(
    js: JetStreamContext, spec: t.StreamSpec, replicas: int, report: ProvisionReport
) -> None:
    config = stream_config(spec, replicas)
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config)
        report.created.append(f"stream {spec.name}")
        return
    try:
        await js.add_stream(config)
        report.unchanged.append(f"stream {spec.name}")
    except APIError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)
        report.updated.append(f"stream {spec.name}")


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
    js: JetStreamContext, spec: t.KvSpec, replicas: int, report: ProvisionReport
) -> None:
    try:
        await js.key_value(spec.bucket)
        report.unchanged.append(f"kv {spec.bucket}")
    except (BucketNotFoundError, NotFoundError):
        await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=spec.bucket,
                description=spec.description or None,
                history=spec.history,
                storage=js_api.StorageType.FILE,
                replicas=replicas,
                direct=True,
            )
        )
        report.created.append(f"kv {spec.bucket}")


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


async def provision(js: JetStreamContext, replicas: int = 1) -> ProvisionReport:
    """Create or update every stream, consumer and KV bucket of the topology."""
    report = ProvisionReport()
    for stream in t.STREAMS:
        await _ensure_stream(js, stream, replicas, report)
    for kv in t.KV_BUCKETS:
        await _ensure_kv(js, kv, replicas, report)
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
