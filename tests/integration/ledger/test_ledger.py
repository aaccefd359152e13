"""The ledger on a real Postgres (the `pgserver` wheel) and a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg
from typer.testing import CliRunner

from agents.common.config import Account
from agents.ledger.agent import Ledger
from agents.ledger.booking import Position, imbalances
from agents.ledger.chain import verify_chain
from agents.ledger.errors import BookingError, LedgerConfigError
from agents.ledger.migrations import migrate
from agents.ledger.queries import cash, positions, recompute_from_fills, verify_balances
from agents.ledger.store import book_fills, opening_intent_id, seed_accounts
from agents.settings import Settings
from bus import Delivery, Emit, Rejected, Transient
from contracts import Identity, LedgerPosted, OrderFilled
from contracts import subjects as s
from contracts import topology as t
from ops.cli import app
from ops.stack.natsd import free_port
from ops.stack.state import DatabaseEndpoint, NatsEndpoints, StackState, write_state
from tests.support.agents import ConnectAs
from tests.support.events import make_fill
from tests.support.pg import embedded_postgres
from tests.support.pipeline import (
    count_subject,
    eventually,
    publisher_for,
    read_subject,
)

pytestmark = pytest.mark.integration

D = Decimal
START = D("1000000")
ACCOUNTS = [Account(name="paper-1", starting_cash_usd=START)]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Any]:
    """A connection to a fresh, migrated, seeded database."""
    connection = await asyncpg.connect(database_url)
    await migrate(connection)
    await seed_accounts(connection, ACCOUNTS)
    yield connection
    await connection.close()


def posted(results: Sequence[LedgerPosted | Exception]) -> list[LedgerPosted]:
    assert all(isinstance(r, LedgerPosted) for r in results), results
    return [r for r in results if isinstance(r, LedgerPosted)]


# -- booking -------------------------------------------------------------------------------------


async def test_batch_of_fills_books_journal_positions_and_cash(conn: Any) -> None:
    fills = [
        make_fill("buy", "10", "190", "0.19"),
        make_fill("buy", "5", "420", "0.21", symbol="MSFT"),
        make_fill("sell", "4", "200", "0.08"),
    ]

    events = posted(await book_fills(conn, fills))

    assert [e.intent_id for e in events] == [f.intent_id for f in fills]
    assert [e.journal_seq for e in events] == sorted(e.journal_seq for e in events)
    assert all(imbalances(e.lines) == {} for e in events)
    assert await positions(conn) == [
        Position("paper-1", "AAPL", "USD", D(6), D(190), D(1140), D(40)),
        Position("paper-1", "MSFT", "USD", D(5), D(420), D(2100), D(0)),
    ]
    expected_cash = START - D("1900.19") - D("2100.21") + D("799.92")
    assert [(c.account, c.currency, c.balance) for c in await cash(conn)] == [
        ("paper-1", "USD", expected_cash)
    ]
    journal = await conn.fetch("SELECT kind, intent_id FROM journal ORDER BY journal_seq")
    assert [r["kind"] for r in journal] == ["opening", "fill", "fill", "fill"]
    lines = await conn.fetchval("SELECT count(*) FROM journal_lines")
    assert lines == 2 + 5 + 5 + 6
    assert await verify_balances(conn) == []


async def test_same_fill_twice_is_booked_once_and_posts_the_same_event(conn: Any) -> None:
    fill = make_fill("buy", "10", "190", "0.19")
    [first] = posted(await book_fills(conn, [fill]))

    again = posted(await book_fills(conn, [fill]))
    within_one_batch = posted(await book_fills(conn, [fill, fill]))

    assert again == [first]
    assert within_one_batch == [first, first]
    assert first.event_id == again[0].event_id
    booked = await conn.fetchval(
        "SELECT count(*) FROM journal WHERE intent_id = $1", fill.intent_id
    )
    assert booked == 1
    [position] = await positions(conn)
    assert position.quantity == 10


async def test_unbookable_fill_is_refused_and_the_rest_of_the_batch_is_booked(conn: Any) -> None:
    good = make_fill("buy", "1", "10")
    bad = make_fill("buy", "1", "10").model_copy(update={"fill_quantity": D("-1")})

    booked, refused = await book_fills(conn, [good, bad])

    assert isinstance(booked, LedgerPosted)
    assert isinstance(refused, BookingError)
    assert refused.code == "invalid_fill"
    assert await conn.fetchval("SELECT count(*) FROM journal WHERE kind = 'fill'") == 1


async def test_seeding_twice_posts_the_starting_cash_once(database_url: str) -> None:
    first, second = [await asyncpg.connect(database_url) for _ in range(2)]
    try:
        await migrate(first)

        made = await asyncio.gather(seed_accounts(first, ACCOUNTS), seed_accounts(second, ACCOUNTS))

        assert sorted(len(m) for m in made) == [0, 1]
        assert await seed_accounts(first, ACCOUNTS) == []
        openings = await first.fetch("SELECT intent_id FROM journal WHERE kind = 'opening'")
        assert [r["intent_id"] for r in openings] == [opening_intent_id("paper-1")]
        assert [c.balance for c in await cash(first)] == [START]
    finally:
        await first.close()
        await second.close()


async def test_two_replicas_migrating_together_apply_each_migration_once(
    database_url: str,
) -> None:
    first, second = [await asyncpg.connect(database_url) for _ in range(2)]
    try:
        applied = await asyncio.gather(migrate(first), migrate(second))

        assert sorted(applied, key=len) == [[], [1]]
        rows = await first.fetch("SELECT version FROM schema_migrations")
        assert [r["version"] for r in rows] == [1]
        assert await migrate(first) == []
    finally:
        await first.close()
        await second.close()


async def test_two_replicas_booking_concurrently_keep_one_linear_chain(
    conn: Any, database_url: str
) -> None:
    other = await asyncpg.connect(database_url)
    try:
        batches = [[make_fill("buy", "1", str(100 + i + j)) for j in range(50)] for i in range(6)]

        async def replica(connection: Any, mine: list[list[OrderFilled]]) -> None:
            for batch in mine:
                await book_fills(connection, batch)

        await asyncio.gather(replica(conn, batches[0::2]), replica(other, batches[1::2]))

        assert await verify_chain(conn) == []
        [position] = await positions(conn)
        assert position.quantity == 300
    finally:
        await other.close()


async def test_chain_verifies_and_an_altered_line_amount_is_reported(conn: Any) -> None:
    await book_fills(conn, [make_fill("buy", "10", "190", "0.19") for _ in range(3)])
    assert await verify_chain(conn) == []
    seq = await conn.fetchval("SELECT journal_seq FROM journal WHERE kind = 'fill' LIMIT 1")

    await conn.execute("ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_append_only")
    await conn.execute(
        "UPDATE journal_lines SET amount = amount + 1 WHERE journal_seq = $1 AND line_no = 1", seq
    )

    problems = await verify_chain(conn)
    assert any(p.startswith(f"journal_seq {seq}: entry_hash") for p in problems), problems
    assert any(f"journal_seq {seq}: lines do not balance in USD" in p for p in problems)
    assert await verify_balances(conn) != []


async def test_journal_refuses_update_and_delete(conn: Any) -> None:
    await book_fills(conn, [make_fill("buy", "1", "10")])

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("UPDATE journal_lines SET amount = 0")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("DELETE FROM journal")


async def test_postgres_holds_what_recompute_from_fills_computes(conn: Any) -> None:
    rng = random.Random(20240611)
    fills: list[OrderFilled] = []
    for _ in range(300):
        fills.append(
            make_fill(
                rng.choice(["buy", "sell"]),
                str(rng.randint(1, 400)),
                f"{rng.uniform(50, 500):.4f}",
                f"{rng.uniform(0, 2):.2f}",
                symbol=rng.choice(["AAPL", "MSFT", "BTC-USD"]),
            )
        )
    replayed = fills + rng.sample(fills, 30)  # redeliveries mixed in

    for start in range(0, len(replayed), 70):
        await book_fills(conn, replayed[start : start + 70])

    book, balances = recompute_from_fills(fills, {"paper-1": START})
    assert {(p.account, p.symbol): p for p in await positions(conn)} == book
    assert {(c.account, c.currency): c.balance for c in await cash(conn)} == balances
    assert await verify_chain(conn) == []
    assert await verify_balances(conn) == []


# -- the agent -----------------------------------------------------------------------------------


def ledger_settings(tmp_path: Path, certs_dir: Path, nats_url: str, database_url: str) -> Settings:
    data_dir = tmp_path / "data"
    if not (data_dir / "certs").exists():
        shutil.copytree(certs_dir, data_dir / "certs")
    return Settings(
        data_dir=data_dir,
        nats_url=nats_url,
        database_url=database_url,
        health_ports={Identity.LEDGER: free_port()},
        accounts=ACCOUNTS,
    )


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


async def _http_ok(url: str) -> bool:
    return await asyncio.to_thread(http_status, url) == 200


async def test_agent_books_fills_from_nats_and_posts_ledger_posted(
    ops_nc: Any,
    connect_as: ConnectAs,
    nats_server: Any,
    certs_dir: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    settings = ledger_settings(tmp_path, certs_dir, nats_server.layout.url, database_url)
    agent = Ledger(settings)
    task = asyncio.create_task(agent.run())
    ready_url = f"http://127.0.0.1:{settings.health_ports[Identity.LEDGER]}/readyz"
    executor = await connect_as(Identity.EXECUTOR)
    publisher = publisher_for(executor, certs_dir, Identity.EXECUTOR)
    fill = make_fill("buy", "10", "190", "0.19")
    filled = s.intent_event(s.ORDER_FILLED, "AAPL", fill.intent_id)
    posted = s.intent_event(s.LEDGER_POSTED, "paper-1", fill.intent_id)
    try:
        await eventually(lambda: _http_ok(ready_url), timeout_s=15)

        await publisher.publish([Emit(filled, fill)])
        await eventually(lambda: _count_is(ops_nc, posted, 1), timeout_s=15)
        # The same fill again under another message id: the stream keeps it, the ledger must not
        # book it twice, and its re-posted event is de-duplicated by its event id.
        await executor.jetstream().publish(
            filled,
            fill.model_dump_json().encode(),
            headers={"Nats-Msg-Id": "redelivered-by-hand"},
        )
        await eventually(lambda: _consumer_drained(ops_nc), timeout_s=15)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 30)

    [msg] = await read_subject(ops_nc, t.LEDGER, posted)
    event = LedgerPosted.model_validate_json(msg.data)
    assert event.intent_id == fill.intent_id
    assert event.causation_id == fill.event_id
    assert event.producer is Identity.LEDGER
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == str(event.event_id)
    check = await asyncpg.connect(database_url)
    try:
        assert await positions(check) == [
            Position("paper-1", "AAPL", "USD", D(10), D(190), D(1900), D(0))
        ]
        assert await check.fetchval("SELECT count(*) FROM journal WHERE kind = 'fill'") == 1
        stored = await check.fetchval(
            "SELECT entry_hash FROM journal WHERE intent_id = $1", fill.intent_id
        )
        assert stored == event.entry_hash
        assert await verify_chain(check) == []
    finally:
        await check.close()


async def _count_is(ops_nc: Any, subject: str, expected: int) -> bool:
    return await count_subject(ops_nc, t.LEDGER, subject) == expected


async def _consumer_drained(ops_nc: Any) -> bool:
    info = await ops_nc.jetstream().consumer_info(t.ORDERS, "ledger")
    return bool(
        info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= 2
    )


def _delivery(fill: OrderFilled) -> Delivery[OrderFilled]:
    msg: Msg = None  # type: ignore[assignment]  # the ledger's handler reads only the value
    subject = s.intent_event(s.ORDER_FILLED, fill.intent.symbol, fill.intent_id)
    return Delivery(fill, subject, 1, 1, msg)


async def test_ledger_readiness_and_booking_follow_a_postgres_restart(
    certs_dir: Path, tmp_path: Path
) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # noqa: PLC0415

    with embedded_postgres() as server:  # its own server: this test stops it
        settings = ledger_settings(tmp_path, certs_dir, "tls://127.0.0.1:1", server.get_uri())
        ctl = {"pgdata": server.pgdata, "user": server.system_user, "timeout": 30}
        await _stop_and_restart(Ledger(settings), server, pg_ctl, ctl)


async def _stop_and_restart(agent: Ledger, server: Any, pg_ctl: Any, ctl: dict[str, Any]) -> None:
    try:
        await agent.open()
        assert await agent.not_ready() == []

        await asyncio.to_thread(pg_ctl, ["-w", "-m", "fast", "stop"], **ctl)
        reasons = await agent.not_ready()
        outcomes = await agent.book([_delivery(make_fill("buy", "1", "10"))])

        assert len(reasons) == 1 and reasons[0].startswith("postgres: ")
        assert isinstance(outcomes[0], Transient)

        await asyncio.to_thread(
            pg_ctl, ["-w", "-m", "fast", "-l", str(server.log), "restart"], **ctl
        )
        await eventually(lambda: _ready(agent), timeout_s=10)
        [outcome] = await agent.book([_delivery(make_fill("buy", "1", "10"))])

        assert not isinstance(outcome, BaseException)
        assert isinstance(outcome[0].event, LedgerPosted)
    finally:
        await agent.close()


async def _ready(agent: Ledger) -> bool:
    return await agent.not_ready() == []


async def test_agent_refuses_to_open_without_a_database_url(
    certs_dir: Path, tmp_path: Path
) -> None:
    settings = ledger_settings(tmp_path, certs_dir, "tls://127.0.0.1:1", "unused")
    agent = Ledger(settings.model_copy(update={"database_url": None}))

    with pytest.raises(LedgerConfigError, match="TRADEOPS_DATABASE_URL"):
        await agent.open()


async def test_unbookable_fill_maps_to_rejected_for_the_dead_letter_stream(
    certs_dir: Path, tmp_path: Path, database_url: str
) -> None:
    agent = Ledger(ledger_settings(tmp_path, certs_dir, "tls://127.0.0.1:1", database_url))
    bad = make_fill("buy", "1", "10").model_copy(update={"currency": "usd"})
    try:
        await agent.open()

        [outcome] = await agent.book([_delivery(bad)])
    finally:
        await agent.close()

    assert isinstance(outcome, Rejected)
    assert outcome.code == "invalid_fill"


# -- the command line ----------------------------------------------------------------------------


async def test_positions_json_lists_what_the_ledger_holds(
    conn: Any, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEOPS_DATABASE_URL", raising=False)
    await book_fills(
        conn,
        [make_fill("buy", "10", "190", "0.19"), make_fill("sell", "2", "65000", symbol="BTC-USD")],
    )
    runner = CliRunner()

    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["positions", "--json", "--database-url", database_url, "--data-dir", str(tmp_path)],
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["positions"] == [
        {
            "account": "paper-1",
            "symbol": "AAPL",
            "currency": "USD",
            "quantity": "10",
            "avg_cost": "190",
            "cost_basis": "1900",
            "realized_pnl": "0",
        },
        {
            "account": "paper-1",
            "symbol": "BTC-USD",
            "currency": "USD",
            "quantity": "-2",
            "avg_cost": "65000",
            "cost_basis": "-130000",  # plain digits, though Postgres hands back 1.3E+5
            "realized_pnl": "0",
        },
    ]
    assert doc["cash"] == [{"account": "paper-1", "currency": "USD", "balance": "1128099.81"}]


async def test_positions_reads_the_running_stacks_database_url(
    conn: Any, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEOPS_DATABASE_URL", raising=False)
    await book_fills(conn, [make_fill("sell", "3", "50", symbol="NVDA")])
    stack = StackState(
        pid=os.getpid(),
        state="running",
        updated_at=datetime.now(UTC),
        data_dir=tmp_path,
        nats=NatsEndpoints(url="tls://127.0.0.1:4222", monitor_url="http://127.0.0.1:8222"),
        database=DatabaseEndpoint(url=database_url, embedded=False),
    )
    write_state(tmp_path, stack)  # the run file, as a running stack writes it

    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["positions", "--data-dir", str(tmp_path), "--account", "paper-1"],
    )

    assert result.exit_code == 0, result.output
    assert "NVDA" in result.stdout and "-3" in result.stdout


async def test_positions_without_a_database_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEOPS_DATABASE_URL", raising=False)

    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["positions", "--data-dir", str(tmp_path)]
    )

    assert result.exit_code == 2
    assert "--database-url" in result.stderr
