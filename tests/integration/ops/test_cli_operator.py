"""The operator's commands as a user runs them, against a running stack: `intent list` with each
filter, `intent watch`, `streams`, `logs`, `config init` and `config show`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from contracts import Identity
from contracts import topology as t
from ops.client import wait_outcome
from ops.stack.embedded import EmbeddedStack
from tests.support.stack import connect_to, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TRADEOPS = [sys.executable, "-m", "ops.cli"]
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
"""The test process's TRADEOPS_* (load_settings sets TRADEOPS_CONFIG) stay out of the CLI."""


@dataclass
class Done:
    code: int
    out: str
    err: str


async def tradeops(*args: str, timeout_s: float = 60.0) -> Done:
    proc = await asyncio.create_subprocess_exec(
        *TRADEOPS, *args, env=CLEAN_ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


@dataclass
class Desk:
    stack: EmbeddedStack
    data: list[str]
    """`--data-dir <the stack's dir>`."""
    ids: dict[str, str]


def body(symbol: str, quantity: str, side: str = "buy", account: str = "paper-1") -> dict[str, str]:
    return {"intent_id": str(uuid.uuid4()), "account": account, "symbol": symbol, "side": side,
            "quantity": quantity}  # fmt: skip


async def submit(stack: EmbeddedStack, *bodies: dict[str, str]) -> None:
    client = await connect_to(stack, Identity.CLIENT)
    try:
        for b in bodies:
            await client.jetstream().publish(
                f"intent.submitted.{b['symbol']}", json.dumps(b).encode()
            )
    finally:
        await client.close()


async def settle(stack: EmbeddedStack, *ids: str) -> dict[str, str]:
    ops = await connect_to(stack, Identity.OPS)
    try:
        trails = [await wait_outcome(ops, i, stack.settings.certs_dir, 90.0) for i in ids]
    finally:
        await ops.close()
    return {trail.intent_id: trail.outcome for trail in trails}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk() -> AsyncIterator[Desk]:
    """A stack that has seen one intent of each outcome: filled (BTC-USD, ETH-USD), rejected by
    the risk gate (too large), dead-lettered by the ingestor (side "hold")."""
    base = Path(tempfile.mkdtemp(prefix="tradeops-operator-"))  # not under pytest's tmp
    try:
        async with running_stack(base / "stack") as stack:
            bodies = {
                "filled": body("BTC-USD", "0.01"),
                "rejected": body("BTC-USD", "50"),
                "eth": body("ETH-USD", "1"),
                "dead": body("BTC-USD", "-1", side="hold"),
            }
            await asyncio.sleep(1.0)  # a few ticks, so there are prices
            await submit(stack, *bodies.values())
            ids = {name: b["intent_id"] for name, b in bodies.items()}
            assert await settle(stack, *ids.values()) == {
                ids["filled"]: "filled", ids["rejected"]: "rejected",
                ids["eth"]: "filled", ids["dead"]: "dead_lettered",
            }  # fmt: skip
            yield Desk(stack, ["--data-dir", str(stack.data_dir)], ids)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def listed(desk: Desk, *args: str) -> dict[str, str]:
    done = await tradeops("intent", "list", "--json", *args, *desk.data)
    assert done.code == 0, done.err
    return {row["intent_id"]: row["outcome"] for row in json.loads(done.out)["intents"]}


async def test_intent_list_shows_every_intent_with_its_outcome(desk: Desk) -> None:
    ids = desk.ids
    assert await listed(desk) == {
        ids["filled"]: "filled", ids["rejected"]: "rejected",
        ids["eth"]: "filled", ids["dead"]: "dead_lettered",
    }  # fmt: skip
    text = await tradeops("intent", "list", *desk.data)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0].split()[:3] == ["ENTERED", "(UTC)", "INTENT"]
    assert any(ids["rejected"] in line and "max_quantity" in line for line in lines)
    assert lines[-1].startswith("4 intents entered since")


async def test_intent_list_filters(desk: Desk) -> None:
    ids = desk.ids
    assert await listed(desk, "--outcome", "rejected") == {ids["rejected"]: "rejected"}
    assert await listed(desk, "--outcome", "dead_lettered") == {ids["dead"]: "dead_lettered"}
    assert set(await listed(desk, "--outcome", "filled")) == {ids["filled"], ids["eth"]}
    assert await listed(desk, "--outcome", "pending") == {}
    assert await listed(desk, "--symbol", "eth-usd") == {ids["eth"]: "filled"}
    assert len(await listed(desk, "--account", "paper-1")) == 4
    assert await listed(desk, "--account", "paper-2") == {}
    assert len(await listed(desk, "--limit", "1")) == 1
    assert await listed(desk, "--since", "2000-01-01") == await listed(desk)
    assert await listed(desk, "--since", "2999-01-01") == {}
    doc = json.loads((await tradeops("intent", "list", "--json", *desk.data)).out)
    row = next(r for r in doc["intents"] if r["intent_id"] == ids["filled"])
    assert row["trusted"] and {e["signature"] for e in row["events"]} == {"valid"}
    assert [e["kind"] for e in row["events"]] == ["intent.accepted", "ledger.posted"]


async def test_intent_list_refuses_bad_filters_in_one_line(desk: Desk) -> None:
    for args in (["--since", "yesterday"], ["--symbol", "BTC.>"]):
        done = await tradeops("intent", "list", *args, *desk.data)
        assert done.code == 2, (args, done)
        assert done.out == "" and len(done.err.strip().splitlines()) == 1, done.err
        assert done.err.startswith("error: "), done.err
    choice = await tradeops("intent", "list", "--outcome", "maybe", *desk.data)
    assert choice.code == 2 and "'dead_lettered'" in choice.err  # click names the choices


async def watching(*args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *TRADEOPS, "intent", "watch", "--json", *args, env=CLEAN_ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert line.startswith(b"watching intent events"), line
    return proc


async def events_until(proc: asyncio.subprocess.Process, iid: str) -> list[dict[str, object]]:
    """Every event the watcher prints until `iid`'s ledger posting."""
    assert proc.stdout is not None
    seen: list[dict[str, object]] = []
    while True:
        event = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        seen.append(event)
        if event["intent_id"] == iid and event["kind"] == "ledger.posted":
            return seen


async def test_intent_watch_sees_a_new_intents_events_until_sigterm(desk: Desk) -> None:
    everything = await watching(*desk.data)
    eth_only = await watching("--symbol", "ETH-USD", *desk.data)
    btc, eth = body("BTC-USD", "0.01"), body("ETH-USD", "0.5")
    await submit(desk.stack, btc, eth)
    seen = await events_until(everything, eth["intent_id"])
    mine = [e for e in seen if e["intent_id"] == btc["intent_id"]]
    kinds = [e["kind"] for e in mine]
    assert kinds[0] == "intent.submitted" and "intent.accepted" in kinds
    signed = [e for e in mine if e["kind"] != "intent.submitted"]
    assert signed and all(e["signature"] == "valid" and e["trusted"] for e in signed)
    accepted = next(e for e in mine if e["kind"] == "intent.accepted")
    assert (accepted["symbol"], accepted["producer"]) == ("BTC-USD", "ingestor")
    only = await events_until(eth_only, eth["intent_id"])
    assert {e["intent_id"] for e in only} == {eth["intent_id"]}
    assert {"intent.accepted", "order.filled", "ledger.posted"} <= {e["kind"] for e in only}
    for proc in (everything, eth_only):
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) in (0, 128 + signal.SIGTERM)


async def test_streams_shows_every_topology_stream_and_consumer(desk: Desk) -> None:
    done = await tradeops("streams", "--json", *desk.data)
    assert done.code == 0, done.err
    streams = {s["name"]: s for s in json.loads(done.out)["streams"]}
    assert {s.name for s in t.STREAMS} <= set(streams)
    assert not any(s["missing"] for s in streams.values())
    assert streams[t.SUBMISSIONS]["messages"] >= 4
    assert streams[t.SUBMISSIONS]["max_msg_size"] == t.stream(t.SUBMISSIONS).max_msg_size
    assert streams[t.MARKET]["max_age_s"] == t.stream(t.MARKET).max_age_s
    consumers = {(c["stream"], c["name"]): c for s in streams.values() for c in s["consumers"]}
    for spec in t.ALL_CONSUMERS:
        found = consumers[(spec.stream, spec.durable)]
        assert found["owner"] == spec.owner and not found["missing"]
    text = await tradeops("streams", *desk.data)
    assert all(any(line.startswith(s.name) for line in text.out.splitlines()) for s in t.STREAMS)


async def test_logs_show_an_agents_log_and_name_the_known_ones(desk: Desk) -> None:
    done = await tradeops("logs", "ingestor", "-n", "200", *desk.data)
    assert done.code == 0, done.err
    assert "ingestor running with" in done.out
    every = await tradeops("logs", "-n", "1", *desk.data)
    assert {line.split(" | ")[0].strip() for line in every.out.splitlines()} >= {
        "nats-server", "ingestor", "ledger"
    }  # fmt: skip
    unknown = await tradeops("logs", "brokr", *desk.data)
    assert unknown.code == 2 and "known: stack, nats-server, postgres, ingestor" in unknown.err
    follow = await asyncio.create_subprocess_exec(
        *TRADEOPS, "logs", "ingestor", "-f", "-n", "0", *desk.data, env=CLEAN_ENV,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(3.0)  # started and polling
    with (desk.stack.data_dir / "logs" / "ingestor.log").open("a") as log:
        log.write("a line written now\n")
    assert follow.stdout is not None
    line = await asyncio.wait_for(follow.stdout.readline(), 10)
    assert line == b"a line written now\n"
    follow.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(follow.wait(), 10) in (0, 128 + signal.SIGTERM)


async def test_config_init_then_show(desk: Desk, tmp_path: Path) -> None:
    taken = await tradeops("config", "init", *desk.data)
    assert taken.code == 1 and "already exists" in taken.err
    shown = json.loads((await tradeops("config", "show", "--json", *desk.data)).out)
    assert shown["settings"]["nats_port"] == desk.stack.settings.nats_port
    assert shown["sources"]["nats_port"] == "tradeops.toml"
    fresh = ["--data-dir", str(tmp_path / "fresh")]
    assert (await tradeops("config", "init", *fresh)).code == 0
    assert (await tradeops("config", "init", "--force", *fresh)).code == 0
    doc = json.loads((await tradeops("config", "show", "--json", *fresh)).out)
    assert doc["config_file"] == str(tmp_path / "fresh" / "tradeops.toml")
    assert doc["sources"] == {}  # the template holds exactly the defaults
    text = (await tradeops("config", "show", *fresh)).out
    assert "nats_port = 4222" in text and "[limits]" in text
