"""A client floods the desk until SUBMISSIONS and DLQ are at their limits: the desk still works.

Written as the flooding client would act: it publishes junk as fast as the server takes it
(oversized and invalid submissions, mixed with a few valid intents of another client), until
the server refuses. Then, with both streams at their configured limits: the valid intents that
got in are filled and booked, a kill is recorded on CONTROL and every agent reports halted, and
the storage exporter shows both streams at their limits.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from nats.js.errors import APIError

from contracts import TradingState
from contracts import subjects as s
from contracts import topology as t
from contracts.intent import MAX_SUBMISSION_BYTES
from tests.support.kill_switch import desk_stack, open_desk
from tests.support.pipeline import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACCOUNT = "flood-1"
SUBMISSIONS_LIMIT = 256 * 1024
DLQ_LIMIT = 48 * 1024
STORAGE = {
    "streams": {
        t.SUBMISSIONS: {"max_bytes": SUBMISSIONS_LIMIT, "discard": "new"},
        t.DLQ: {"max_bytes": DLQ_LIMIT, "discard": "new"},
    }
}
LARGEST_DEAD_LETTER = 8 * 1024
"""More than any one dead letter of this test takes: a stream within this of its limit is full."""


def junk(n: int) -> bytes:
    """Invalid submissions: one in 50 as large as the stream takes, the rest ~1 KiB."""
    size = MAX_SUBMISSION_BYTES - 512 if n % 50 == 1 else 1024
    return json.dumps({"flood": n, "pad": "x" * size}).encode()[: size + 100]


def valid(iid: str, n: int) -> bytes:
    return json.dumps(
        {
            "intent_id": iid,
            "account": ACCOUNT,
            "symbol": "BTC-USD",
            "side": "buy" if n % 2 == 0 else "sell",
            "quantity": "0.01",
        }
    ).encode()


async def test_a_flood_fills_its_streams_while_fills_are_booked_and_a_kill_is_honoured() -> None:
    async with (
        desk_stack("tradeops-flood-", [ACCOUNT], storage=STORAGE) as stack,
        open_desk(stack) as desk,
    ):
        js = desk.client.jetstream()
        subject = s.of(s.INTENT_SUBMITTED, "BTC-USD")

        # Act: flood until the server refuses, a valid intent after every 25 junk messages
        refused: APIError | None = None
        let_in: list[str] = []
        for n in range(10_000):
            if n % 25 == 0:
                iid = str(uuid.uuid4())
                try:
                    await js.publish(subject, valid(iid, n))
                    let_in.append(iid)
                except APIError as exc:
                    refused = exc
                    break
            try:
                await js.publish(subject, junk(n))
            except APIError as exc:
                refused = exc
                break

        # Assert: refused at SUBMISSIONS' limit with the server's reason
        assert refused is not None and "maximum bytes exceeded" in str(refused)
        ops_js = desk.ops.jetstream()
        held = (await ops_js.stream_info(t.SUBMISSIONS)).state.bytes
        assert SUBMISSIONS_LIMIT - MAX_SUBMISSION_BYTES <= held <= SUBMISSIONS_LIMIT

        # Assert: DLQ fills to its limit and no further (the rest waits in SUBMISSIONS)
        async def dlq_full() -> bool:
            state = (await ops_js.stream_info(t.DLQ)).state
            return DLQ_LIMIT - state.bytes < LARGEST_DEAD_LETTER

        await eventually(dlq_full, timeout_s=60, every_s=0.5)
        assert (await ops_js.stream_info(t.DLQ)).state.bytes <= DLQ_LIMIT

        # Assert: every valid intent that got in is filled and booked
        assert len(let_in) >= 3
        await desk.terminals.all_done(let_in, timeout_s=60)

        async def all_booked() -> bool:
            return all("ledger.posted" in desk.terminals.events[i] for i in let_in)

        await eventually(all_booked, timeout_s=30)

        # Assert: with both streams full, a kill is recorded and every agent halts
        before = (await ops_js.stream_info(t.CONTROL)).state.messages
        await desk.set_state(TradingState.HALTED)
        assert (await ops_js.stream_info(t.CONTROL)).state.messages == before + 1

        # Assert: the exporter shows both streams at their limits
        url = f"http://{stack.settings.health_host}:{stack.settings.storage.metrics_port}"
        text = await _metrics_after_refresh(url + "/metrics")
        assert f'tradeops_stream_max_bytes{{stream="{t.DLQ}"}} {float(DLQ_LIMIT)}' in text
        assert f'tradeops_stream_bytes{{stream="{t.SUBMISSIONS}"}} {float(held)}' in text


async def _metrics_after_refresh(url: str) -> str:
    await asyncio.sleep(6)  # one refresh of the exporter (every 5 s)
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.text()
