"""The trading state by one rule (contracts.control): stream order, the subject decides, a kill is
easy and a resume deliberate. Against a whole stack, as operators with skewed clocks and a plain
NATS client holding the ops credentials would act."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from typer.testing import CliRunner, Result

import nats
from bus import Credentials, Emit, Publisher, Signer
from bus.identity import CertPaths
from contracts import Identity, TradingState, TradingStateChanged
from contracts import subjects as s
from ops.audit.halts import HALT_GRACE_S
from ops.cli import app
from ops.stack.embedded import EmbeddedStack
from tests.support import events
from tests.support.kill_switch import Desk, desk_stack, kind_and_reasons, open_desk
from tests.support.stack import connect_to

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

QUIET_S = 1.0
"""How long a message that must change nothing is given to change something."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack() -> AsyncIterator[EmbeddedStack]:
    async with desk_stack("tradeops-control-", ["paper-1"]) as embedded:
        yield embedded


@pytest_asyncio.fixture(loop_scope="module")
async def desk(stack: EmbeddedStack) -> AsyncIterator[Desk]:
    async with open_desk(stack) as opened:
        yield opened


async def cli(stack: EmbeddedStack, *args: str) -> Result:
    argv = [*args, "--data-dir", str(stack.settings.data_dir)]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def reported_by_status(stack: EmbeddedStack) -> str:
    result = await cli(stack, "status", "--json")
    return str(json.loads(result.stdout)["trading_state"])


async def everyone_says(desk: Desk, state: TradingState) -> None:
    """Every agent's /status and `tradeops status` report `state`."""
    assert set((await desk.states()).values()) == {str(state)}
    assert await reported_by_status(desk.stack) == str(state)


async def signed(desk: Desk, subject: str, state: TradingState, skew: timedelta) -> None:
    """Publish a well-formed, ops-signed change stamped `skew` away from now."""
    event = TradingStateChanged(
        event_id=uuid.uuid4(), producer=Identity.OPS, state=state, reason="skewed operator",
        requested_by="ops-2", ts=datetime.now(UTC) + skew,
    )  # fmt: skip
    future = await Publisher(desk.ops.jetstream(), desk.signer).start(Emit(subject, event))
    await future


async def plain_ops_client(stack: EmbeddedStack) -> nats.NATS:
    """A NATS client with the ops certificate and nothing of tradeops: no signing key used."""
    paths = CertPaths(stack.settings.certs_dir)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(paths.ca))
    ctx.load_cert_chain(str(paths.cert("ops")), str(paths.key("ops")))
    return await nats.connect(stack.layout.url, tls=ctx, inbox_prefix="_INBOX.ops")


async def test_a_plain_unsigned_kill_halts_everyone_and_an_unsigned_resume_does_not(
    desk: Desk,
) -> None:
    plain = await plain_ops_client(desk.stack)
    try:
        await plain.jetstream().publish(s.CONTROL_KILL, b'{"reason": "paged: venue outage"}')
        await desk.poller.all_seen(TradingState.HALTED)
        await everyone_says(desk, TradingState.HALTED)

        resume = TradingStateChanged(event_id=uuid.uuid4(), producer=Identity.OPS,
                                     state=TradingState.ACTIVE, reason="unsigned try")  # fmt: skip
        await plain.jetstream().publish(s.CONTROL_RESUME, resume.model_dump_json().encode())
        await asyncio.sleep(QUIET_S)
        await everyone_says(desk, TradingState.HALTED)
    finally:
        await plain.close()

    iid = await desk.submit("paper-1", "BTC-USD", "buy", "0.01")
    kind, reasons = kind_and_reasons(await desk.terminals.outcome(iid))
    assert "halted" in reasons, (kind, reasons)

    await desk.set_state(TradingState.ACTIVE)  # signed, with a reason: it resumes
    audit = await cli(desk.stack, "audit", "verify", "--no-postgres", "--json")
    assert audit.exit_code == 0, audit.stdout
    warnings = [w["what"] for w in json.loads(audit.stdout)["warnings"]]
    assert "kill authorized by permissions, unsigned" in warnings


async def test_operators_clocks_an_hour_apart_cannot_reorder_the_kill(desk: Desk) -> None:
    await signed(desk, s.CONTROL_RESUME, TradingState.ACTIVE, timedelta(hours=1))
    await signed(desk, s.CONTROL_KILL, TradingState.HALTED, timedelta(hours=-1))
    await desk.poller.all_seen(TradingState.HALTED)
    await everyone_says(desk, TradingState.HALTED)
    iid = await desk.submit("paper-1", "ETH-USD", "buy", "0.1")
    assert "halted" in kind_and_reasons(await desk.terminals.outcome(iid))[1]

    await signed(desk, s.CONTROL_RESUME, TradingState.ACTIVE, timedelta(hours=-1))
    await desk.poller.all_seen(TradingState.ACTIVE)  # the later message, however it is stamped
    await everyone_says(desk, TradingState.ACTIVE)


async def test_the_subject_decides_a_kill_saying_active_halts_a_resume_saying_halted_does_not(
    desk: Desk,
) -> None:
    await signed(desk, s.CONTROL_KILL, TradingState.ACTIVE, timedelta(0))
    await desk.poller.all_seen(TradingState.HALTED)
    await signed(desk, s.CONTROL_RESUME, TradingState.HALTED, timedelta(0))
    await asyncio.sleep(QUIET_S)
    await everyone_says(desk, TradingState.HALTED)


async def test_the_audit_names_a_fill_stored_after_a_halt_injected_with_the_executor_s_key(
    desk: Desk,
) -> None:
    await desk.set_state(TradingState.HALTED)
    await asyncio.sleep(HALT_GRACE_S + 0.2)  # past any order already at the broker
    executor = await connect_to(desk.stack, Identity.EXECUTOR)
    try:
        trade = events.trade_intent(symbol="BTC-USD", quantity="0.01")
        fill = events.order_filled(trade, price="67000", fee="0.07")
        signer = Signer.from_file(
            Identity.EXECUTOR, Credentials(Identity.EXECUTOR, desk.stack.settings.certs_dir)
            .signing_key_file,
        )  # fmt: skip
        subject = s.intent_event(s.ORDER_FILLED, "BTC-USD", trade.intent_id)
        future = await Publisher(executor.jetstream(), signer).start(Emit(subject, fill))
        await future
    finally:
        await executor.close()

    audit = await cli(desk.stack, "audit", "verify", "--no-postgres", "--json")

    found = json.loads(audit.stdout)["discrepancies"]
    late = [f for f in found if f["check"] == "halt"]
    assert audit.exit_code == 1
    assert [f["intent_id"] for f in late] == [str(trade.intent_id)]
    assert "after the halt (CONTROL #" in late[0]["what"]
