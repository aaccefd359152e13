"""Stream limits on a real nats-server: applied, reserved, never lowered under stored data.

A client flood stops at SUBMISSIONS' own limit: the client's publish is refused with the
server's reason, and ops still records a kill on CONTROL.
"""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import APIError

from bus.limits import StorageSettings
from bus.provision import LimitsRefused, provision
from contracts import Identity
from contracts import subjects as s
from contracts import topology as t
from tests.support.agents import ConnectAs

pytestmark = pytest.mark.integration

SMALL = StorageSettings(
    streams={
        t.SUBMISSIONS: {"max_bytes": "64KiB", "discard": "new"},
        t.DLQ: {"max_bytes": "32KiB", "discard": "new"},
    }
)


async def test_every_stream_and_bucket_gets_its_configured_limit(ops_nc: NATS) -> None:
    js = ops_nc.jetstream()
    await provision(js, storage=SMALL)

    configs = {i.config.name: i.config for i in await js.streams_info()}

    for spec in t.STREAMS:
        limit = SMALL.stream(spec.name)
        assert configs[spec.name].max_bytes == limit.max_bytes, spec.name
        assert configs[spec.name].discard == js_api.DiscardPolicy(limit.discard), spec.name
    for kv in t.KV_BUCKETS:
        assert configs[kv.stream].max_bytes == SMALL.stream(kv.stream).max_bytes


async def test_an_older_store_without_limits_gets_them_and_keeps_its_messages(
    connect_as: ConnectAs,
) -> None:
    ops = await connect_as(Identity.OPS)
    js = ops.jetstream()
    # An older version's CONTROL: no byte limit, one message in it
    await js.add_stream(js_api.StreamConfig(name=t.CONTROL, subjects=["control.>"]))
    await js.publish(s.CONTROL_KILL, b'{"reason": "old"}')

    report = await provision(js)

    info = await js.stream_info(t.CONTROL)
    assert f"stream {t.CONTROL}" in report.updated
    assert info.config.max_bytes == StorageSettings().stream(t.CONTROL).max_bytes
    assert info.state.messages == 1


async def test_a_limit_below_what_a_stream_holds_is_refused_and_nothing_is_dropped(
    ops_nc: NATS,
) -> None:
    js = ops_nc.jetstream()
    for n in range(40):
        await js.publish(s.CONTROL_KILL, b'{"reason": "%d"}' % n + b" " * 100)
    held = (await js.stream_info(t.CONTROL)).state

    tight = StorageSettings(streams={t.CONTROL: {"max_bytes": held.bytes // 2}})
    with pytest.raises(LimitsRefused, match=r"holds .* more than its configured max_bytes"):
        await provision(js, storage=tight)

    assert (await js.stream_info(t.CONTROL)).state.messages == held.messages


async def test_limits_the_server_store_cannot_reserve_are_refused_with_what_to_do(
    connect_as: ConnectAs,
) -> None:
    js = (await connect_as(Identity.OPS)).jetstream()
    # The test server's store is sized for the default limits; ask for far more
    huge = StorageSettings(streams={t.INTENTS: {"max_bytes": "10TiB"}})

    with pytest.raises(LimitsRefused, match="max_file_store"):
        await provision(js, storage=huge)


async def test_a_client_flood_stops_at_submissions_while_a_kill_is_still_recorded(
    connect_as: ConnectAs,
) -> None:
    ops = await connect_as(Identity.OPS)
    await provision(ops.jetstream(), storage=SMALL)
    client = (await connect_as(Identity.CLIENT)).jetstream()

    # Act: the flooding client publishes until the server refuses
    refusal: APIError | None = None
    stored = 0
    for _ in range(200):
        try:
            await client.publish(f"{s.INTENT_SUBMITTED}.AAPL", b"x" * 2000, timeout=5)
            stored += 1
        except APIError as exc:
            refusal = exc
            break

    # Assert: refused at the limit with the server's reason; CONTROL still takes a kill
    assert refusal is not None and "maximum bytes exceeded" in str(refusal)
    info = await ops.jetstream().stream_info(t.SUBMISSIONS)
    assert info.state.bytes <= SMALL.stream(t.SUBMISSIONS).max_bytes
    assert stored == info.state.messages
    ack = await ops.jetstream().publish(s.CONTROL_KILL, b'{"reason": "flood"}')
    assert ack.stream == t.CONTROL
