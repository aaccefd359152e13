"""Every agent's health endpoint on the embedded stack, and the ledger across a Postgres outage.

One stack serves the module (starting one takes ~25 s here). Postgres is the stack's embedded
pgserver: it is stopped and started again with pgserver's own `pg_ctl` wrapper, as the system
user pgserver runs it as (`pgserver` when root), with the options pgserver starts it with.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from contracts import Identity
from contracts import subjects as s
from contracts import topology as t
from ops.stack.embedded import EmbeddedStack
from tests.support.pipeline import eventually
from tests.support.stack import (
    connect_to,
    fetch_one,
    outcomes,
    running_stack,
    terminal_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BACKOFF_TOTAL_S = sum(t.consumer("ledger").backoff_s[: t.consumer("ledger").max_deliver - 1])
"""How long the ledger's deliveries of one fill last before they run out (0.25+1+4+15 s)."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    base = Path(tempfile.mkdtemp(prefix="tradeops-health-"))  # not under pytest's tmp
    try:
        async with running_stack(base / "stack") as embedded:
            yield embedded
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base_url(stack: EmbeddedStack, agent: Identity) -> str:
    settings = stack.settings
    return f"http://{settings.health_host}:{settings.health_ports[agent]}"


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, bytes]:
    """Return the status, content type and body of a GET."""
    async with http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    status, _, body = await get(http, url)
    return status, json.loads(body)


async def submit(client: NATS, symbol: str, side: str = "buy", quantity: str = "0.01") -> str:
    iid = str(uuid.uuid4())
    body = {"intent_id": iid, "account": "paper-1", "symbol": symbol, "side": side,
            "quantity": quantity}  # fmt: skip
    await client.jetstream().publish(s.of(s.INTENT_SUBMITTED, symbol), json.dumps(body).encode())
    return iid


async def submit_some(client: NATS, n: int) -> list[str]:
    return [await submit(client, ("BTC-USD", "ETH-USD")[k % 2]) for k in range(n)]


async def until_all(ops: NATS, ids: list[str], kind: str, timeout_s: float = 30.0) -> None:
    async def reached() -> bool:
        seen = await outcomes(ops)
        return all(seen[i][kind] >= 1 for i in ids)

    await eventually(reached, timeout_s=timeout_s, every_s=0.25)


# -- the endpoints -------------------------------------------------------------------------------


async def test_every_agent_serves_healthz_readyz_metrics_and_status(
    stack: EmbeddedStack, http: aiohttp.ClientSession
) -> None:
    # Arrange: a few intents through the whole pipeline, so every agent has processed some
    await asyncio.sleep(1.0)  # a few ticks from the feed
    client = await connect_to(stack, Identity.CLIENT)
    ops = await connect_to(stack, Identity.OPS)
    ids = await submit_some(client, 4)
    await until_all(ops, ids, "ledger.posted")
    await client.close()
    await ops.close()

    for agent in stack.agents:
        url = base_url(stack, agent)

        # Act / Assert: liveness and readiness
        assert await get_json(http, f"{url}/healthz") == (200, {"alive": True})
        assert await get_json(http, f"{url}/readyz") == (200, {"ready": True, "reasons": []})

        # metrics: Prometheus text with the agent's own tradeops_ series
        status, content_type, body = await get(http, f"{url}/metrics")
        assert (status, content_type.split(";")[0]) == (200, "text/plain")
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name.startswith("tradeops_")
        }
        state = ("tradeops_trading_state", (("agent", str(agent)), ("state", "active")))
        assert samples[state] == 1.0, agent
        processed = sum(
            value
            for (name, labels), value in samples.items()
            if name == "tradeops_messages_processed_total" and ("agent", str(agent)) in labels
        )
        assert processed >= len(ids), agent
        series = {
            labels
            for (name, labels), _ in samples.items()
            if name == "tradeops_messages_processed_total" and ("agent", str(agent)) in labels
        }
        # one series per consumer, however many intents: never one per message subject
        assert len(series) <= len(t.consumers_of(agent)), sorted(series)

        # status: identity, trading state, each consumer's backlog, the runtime's counters
        status, doc = await get_json(http, f"{url}/status")
        assert status == 200
        assert (doc["identity"], doc["trading_state"], doc["connected"]) == (
            str(agent),
            "active",
            True,
        )
        owned = {c.durable for c in t.ALL_CONSUMERS if c.owner is agent}
        assert {c["durable"] for c in doc["consumers"]} == owned
        for consumer in doc["consumers"]:
            assert isinstance(consumer["pending"], int) and consumer["pending"] >= 0, consumer
            assert isinstance(consumer["ack_pending"], int) and consumer["ack_pending"] >= 0
        assert doc["processed"] >= len(ids)
        assert (doc["failed"], doc["dead_lettered"]) == (0, 0), agent
        assert "last_error" in doc
        assert doc["ready_reasons"] == []


# -- Postgres under the ledger -------------------------------------------------------------------


def _pg_ctl(stack: EmbeddedStack, *args: str) -> None:
    """Run pgserver's pg_ctl on the stack's data dir, as the user pgserver runs Postgres as."""
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # noqa: PLC0415

    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(list(args), pgdata=stack.data_dir / "pg", user=user, timeout=30)


async def stop_postgres(stack: EmbeddedStack) -> None:
    await asyncio.to_thread(_pg_ctl, stack, "-w", "-m", "fast", "stop")


async def start_postgres(stack: EmbeddedStack) -> None:
    """Start it as pgserver does: no TCP, the same unix socket directory, the same log file."""
    assert stack.database_url is not None
    socket_dir = parse_qs(urlsplit(stack.database_url).query)["host"][0]
    pgdata = stack.data_dir / "pg"
    args = ("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start")
    await asyncio.to_thread(_pg_ctl, stack, *args)


async def readyz(http: aiohttp.ClientSession, stack: EmbeddedStack) -> tuple[int, Any]:
    return await get_json(http, f"{base_url(stack, Identity.LEDGER)}/readyz")


async def journal_fills(stack: EmbeddedStack) -> set[str]:
    assert stack.database_url is not None
    rows = await fetch_one(stack.database_url, "SELECT intent_id FROM journal WHERE kind = 'fill'")
    return {str(r["intent_id"]) for r in rows}


async def test_ledger_is_not_ready_while_postgres_is_down_and_books_every_fill_when_it_returns(
    stack: EmbeddedStack, http: aiohttp.ClientSession
) -> None:
    # Arrange
    client = await connect_to(stack, Identity.CLIENT)
    ops = await connect_to(stack, Identity.OPS)
    assert (await readyz(http, stack))[0] == 200

    # Act: stop Postgres; intents go on filling meanwhile
    await stop_postgres(stack)
    try:

        async def ledger_not_ready() -> bool:
            return (await readyz(http, stack))[0] == 503

        await eventually(ledger_not_ready, timeout_s=10)
        _, down = await readyz(http, stack)
        ids = await submit_some(client, 6)
        await until_all(ops, ids, "order.filled")
        seen_down = await outcomes(ops)
        _, ledger_down = await get_json(http, f"{base_url(stack, Identity.LEDGER)}/status")
    finally:
        await start_postgres(stack)

    async def ledger_ready() -> bool:
        return (await readyz(http, stack))[0] == 200

    await eventually(ledger_ready, timeout_s=10)
    _, up = await readyz(http, stack)
    await until_all(ops, ids, "ledger.posted", timeout_s=BACKOFF_TOTAL_S + 10)

    # Assert: not ready, naming Postgres, while it was down; nothing booked then
    assert down["ready"] is False
    assert any(r.startswith("postgres") for r in down["reasons"]), down
    assert all(seen_down[i]["ledger.posted"] == 0 for i in ids)
    assert ledger_down["failed"] > 0 and "postgres" in ledger_down["last_error"], ledger_down
    # ready again, and every fill booked exactly once: nothing lost, nothing twice
    assert up == {"ready": True, "reasons": []}
    seen = await outcomes(ops)
    assert all((seen[i]["ledger.posted"], terminal_count(seen[i])) == (1, 1) for i in ids)
    assert set(ids) <= await journal_fills(stack)
    await client.close()
    await ops.close()


async def test_fills_during_a_postgres_outage_longer_than_the_backoff_are_booked_when_it_returns(
    stack: EmbeddedStack, http: aiohttp.ClientSession
) -> None:
    # Arrange
    client = await connect_to(stack, Identity.CLIENT)
    ops = await connect_to(stack, Identity.OPS)

    # Act: a fill arrives while Postgres is down for a little longer than the backoff lasts
    await stop_postgres(stack)
    try:
        ids = await submit_some(client, 2)
        await until_all(ops, ids, "order.filled")
        await asyncio.sleep(BACKOFF_TOTAL_S + 2)
    finally:
        await start_postgres(stack)

    # Assert: booked once Postgres is back (the next delivery would be due 15 s later)
    async def settled() -> bool:
        seen = await outcomes(ops)
        return all(terminal_count(seen[i]) >= 1 for i in ids)

    await eventually(settled, timeout_s=30, every_s=0.5)
    seen = await outcomes(ops)
    await client.close()
    await ops.close()
    assert {i: (seen[i]["ledger.posted"], seen[i]["dead_letter"]) for i in ids} == {
        i: (1, 0) for i in ids
    }
