"""Every stream and bucket has a byte limit from `[storage]`, and the store holds them all."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from nats.js.api import DiscardPolicy
from pydantic import ValidationError

from bus.identity import CertPaths
from bus.limits import StorageSettings
from bus.provision import stream_config
from contracts import topology as t
from ops.pki.natsconf import NatsLayout, render_single_node


def test_every_stream_and_bucket_of_the_topology_has_a_byte_limit_by_default() -> None:
    storage = StorageSettings()

    for spec in t.STREAMS:
        assert storage.stream(spec.name).max_bytes > 0, spec.name
    for kv in t.KV_BUCKETS:
        assert storage.stream(kv.stream).max_bytes > 0, kv.bucket


def test_the_server_store_is_every_reservation_plus_headroom() -> None:
    storage = StorageSettings(headroom="1MiB")
    limits = [storage.stream(s.name) for s in t.STREAMS]
    limits += [storage.stream(kv.stream) for kv in t.KV_BUCKETS]

    assert storage.max_file_store == sum(x.max_bytes for x in limits) + 1024 * 1024


def test_a_table_for_one_stream_replaces_its_limits_and_keeps_the_others() -> None:
    storage = StorageSettings(streams={"DLQ": {"max_bytes": "64KiB", "max_age": "P1D"}})

    assert storage.stream("DLQ").max_bytes == 65536
    assert storage.stream("DLQ").max_age == timedelta(days=1)
    assert storage.stream("CONTROL") == StorageSettings().stream("CONTROL")


@pytest.mark.parametrize(
    "given",
    [
        {"streams": {"NOT_A_STREAM": {"max_bytes": 1024}}},
        {"buckets": {"nope": {"max_bytes": 1024}}},
        {"buckets": {"intents": {"max_bytes": 1024, "discard": "old"}}},
        {"streams": {"DLQ": {"max_bytes": "lots"}}},
        {"streams": {"DLQ": {"max_bytes": 1024, "discard": "sometimes"}}},
    ],
)
def test_a_limit_that_cannot_be_applied_is_refused_when_the_settings_load(
    given: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        StorageSettings.model_validate(given)


def test_submissions_and_dead_letters_refuse_when_full_and_ticks_drop_the_oldest() -> None:
    storage = StorageSettings()

    assert storage.stream(t.SUBMISSIONS).discard == "new"
    assert storage.stream(t.DLQ).discard == "new"
    for record in (t.CONTROL, t.ORDERS, t.LEDGER, t.INTENTS, t.RISK):
        assert storage.stream(record).discard == "new"
        assert storage.stream(record).max_age == timedelta(0), "a record never ages out"
    assert storage.stream(t.MARKET).discard == "old"


def test_the_stream_configuration_carries_the_configured_limit() -> None:
    storage = StorageSettings(
        streams={"SUBMISSIONS": {"max_bytes": 4096, "max_age": 60, "discard": "new"}}
    )

    config = stream_config(t.stream(t.SUBMISSIONS), 1, storage.stream(t.SUBMISSIONS))

    assert (config.max_bytes, config.max_age, config.discard) == (4096, 60.0, DiscardPolicy.NEW)


def test_the_rendered_server_store_follows_the_settings() -> None:
    storage = StorageSettings(streams={"DLQ": {"max_bytes": 1}})
    layout = NatsLayout(CertPaths(Path("/c")), Path("/s"), max_file_store=storage.max_file_store)

    assert f"max_file_store: {storage.max_file_store}\n" in render_single_node(layout)
