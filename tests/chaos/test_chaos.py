"""Chaos: the embedded stack under steady load while agents, nats-server and Postgres die.

Runs only when `TRADEOPS_CHAOS_SCALE` is set: `full` (`make chaos`: 300 intents/s for 60 s) or
`ci` (100 intents/s for 20 s). `ops.bench.chaos.run_chaos` drives the load and the faults; this test
checks the outcome: every intent has exactly one terminal outcome, no fill is doubled, Postgres
equals the fills, and `tradeops audit verify` passes (when the command exists).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from agents.ledger.chain import verify_chain
from agents.ledger.queries import cash, positions, recompute_from_fills, verify_balances
from agents.settings import load_settings
from contracts import Identity
from ops.bench.chaos import (
    SCALE_ENV,
    STARTING_CASH,
    ChaosRun,
    plan_from_env,
    run_chaos,
    write_chaos_config,
)
from ops.stack.embedded import EmbeddedStack
from tests.support.stack import connect_to

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def chaos_dir() -> Iterator[Path]:
    """A data dir outside pytest's tmp tree (embedded Postgres runs as another user when root)."""
    base = Path(tempfile.mkdtemp(prefix="tradeops-chaos-"))
    data_dir = base / "stack"
    write_chaos_config(data_dir)
    yield data_dir
    shutil.rmtree(base, ignore_errors=True)


def outcome_counts(run: ChaosRun) -> Counter[str]:
    counts: Counter[str] = Counter()
    for iid in run.intent_ids:
        kinds, reasons = run.log.kinds[iid], ",".join(dict.fromkeys(run.log.reasons[iid]))
        if kinds["ledger.posted"]:
            counts["filled"] += 1
        for kind in ("risk.rejected", "order.rejected", "dead_letter"):
            if kinds[kind]:
                counts[f"{kind}:{reasons}"] += 1
        if not run.log.terminal(iid):
            counts["pending"] += 1
    return counts


def lost_or_doubled(run: ChaosRun) -> list[str]:
    """Every intent without exactly one terminal outcome, every fill booked twice."""
    out = [f"unverified event {u}" for u in run.log.unverified]
    for iid in run.intent_ids:
        kinds = dict(run.log.kinds[iid])
        if run.log.terminal(iid) != 1:
            out.append(f"intent {iid}: {run.log.terminal(iid)} terminal outcomes {kinds}")
        if kinds.get("order.filled", 0) > 1 or kinds.get("ledger.posted", 0) > 1:
            out.append(f"intent {iid}: filled or posted twice {kinds}")
        if kinds.get("order.filled", 0) != kinds.get("ledger.posted", 0):
            out.append(f"intent {iid}: fills and postings disagree {kinds}")
    return out


async def ledger_problems(database_url: str, run: ChaosRun) -> list[str]:
    """Where Postgres disagrees with the fills of the ORDERS stream, booked in journal order."""
    conn = await asyncpg.connect(database_url)
    try:
        order = [
            r["intent_id"]
            for r in await conn.fetch(
                "SELECT intent_id FROM journal WHERE kind = 'fill' ORDER BY journal_seq"
            )
        ]
        by_id = {f.intent_id: f for f in run.log.fills}
        problems = []
        if len(order) != len(set(order)) or set(order) != set(by_id):
            problems.append(
                f"journal books {len(order)} fills ({len(set(order))} intents), ORDERS holds "
                f"{len(by_id)}: only in journal {set(order) - set(by_id)}, "
                f"only in ORDERS {set(by_id) - set(order)}"
            )
        starting = {a: Decimal(v) for a, v in STARTING_CASH.items()}
        book, balances = recompute_from_fills([by_id[i] for i in order if i in by_id], starting)
        held = {(p.account, p.symbol): p.quantity for p in await positions(conn) if p.quantity}
        expected = {k: p.quantity for k, p in book.items() if p.quantity}
        if held != expected:
            problems.append(f"positions: Postgres {held}, fills imply {expected}")
        held_cash = {(c.account, c.currency): c.balance for c in await cash(conn)}
        if held_cash != balances:
            problems.append(f"cash: Postgres {held_cash}, fills imply {balances}")
        problems += await verify_balances(conn)
        problems += await verify_chain(conn)
        return problems
    finally:
        await conn.close()


async def audit_verify(data_dir: Path) -> tuple[int | None, str]:
    """Run `tradeops audit verify`; (None, why) when this build has no such command."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        "audit",
        "verify",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode == 2 and "No such command" in text:
        return None, "tradeops audit verify does not exist in this build"
    return proc.returncode, text


async def test_under_chaos_every_intent_has_one_outcome_and_the_ledger_equals_the_fills(
    chaos_dir: Path,
) -> None:
    if not os.environ.get(SCALE_ENV):
        pytest.skip(f"set {SCALE_ENV}=full (make chaos) or {SCALE_ENV}=ci to run")
    plan = plan_from_env()
    async with EmbeddedStack(load_settings(chaos_dir)).running() as stack:
        client = await connect_to(stack, Identity.CLIENT)
        ops = await connect_to(stack, Identity.OPS)
        await asyncio.sleep(1.0)  # first ticks
        run = await run_chaos(stack, client, ops, plan)
        assert stack.database_url is not None
        problems = lost_or_doubled(run)
        ledger = await ledger_problems(stack.database_url, run)
        audit_code, audit_text = await audit_verify(chaos_dir)
        await client.close()
        await ops.close()

    elapsed = max(run.load_s, 1e-9)
    print(f"\nchaos {plan}")
    print(
        f"submissions: {len(run.submissions)} in {run.load_s:.1f}s "
        f"({len(run.submissions) / elapsed:.0f}/s); distinct intents: {len(run.intent_ids)}; "
        f"duplicates: {sum(s.expect == 'duplicate' for s in run.submissions)}"
    )
    print(f"publish retries: {sum(run.retries.values())} {dict(run.retries)}")
    print(f"settled: {run.settled}, {run.settle_s:.1f}s after the load")
    print(f"outcomes: {dict(sorted(outcome_counts(run).items()))}")
    print(
        f"fills: {len(run.log.fills)}; dead letters: {len(run.log.dead_letters)} "
        f"{dict(Counter(d.reason for d in run.log.dead_letters))}"
    )
    print(f"restarts: {run.restarts}")
    print("faults:\n  " + "\n  ".join(run.faults))
    print(f"audit verify: exit {audit_code}\n{audit_text[-3000:]}")
    print(f"lost or doubled: {len(problems)}; ledger problems: {len(ledger)}")
    for line in (problems + ledger)[:30]:
        print(f"  {line}")

    assert run.settled, f"{outcome_counts(run)['pending']} intents never settled"
    assert problems == []
    assert ledger == []
    assert audit_code in (None, 0), audit_text[-3000:]
