"""Provisioning against a real nats-server: idempotent, and honest about what an upgrade left."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.js import api as js_api

from bus.provision import provision
from contracts import topology as t

pytestmark = pytest.mark.integration


async def test_provisioning_twice_creates_nothing_the_second_time(ops_nc: NATS) -> None:
    report = await provision(ops_nc.jetstream())

    assert report.created == []
    assert report.stale == []
    streams = {i.config.name for i in await ops_nc.jetstream().streams_info()}
    assert {s.name for s in t.STREAMS} <= streams


async def test_a_consumer_the_topology_no_longer_has_is_reported_with_what_it_holds(
    ops_nc: NATS,
) -> None:
    # Arrange: an older version's durable consumer, with a message it never processed
    js = ops_nc.jetstream()
    config = js_api.ConsumerConfig(
        durable_name="old-ingestor",
        ack_policy=js_api.AckPolicy.EXPLICIT,
        filter_subject="intent.accepted.>",
    )
    await js.add_consumer(t.INTENTS, config)
    await js.publish("intent.accepted.AAPL", b"left over")

    # Act
    report = await provision(js)

    # Assert: reported, not deleted (deleting it would lose what it holds)
    assert report.stale == [f"consumer {t.INTENTS}/old-ingestor (1 unprocessed)"]
    assert "old-ingestor" in {c.name for c in await js.consumers_info(t.INTENTS)}
