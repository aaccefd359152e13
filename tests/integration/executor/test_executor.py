"""The executor on a real nats-server: fills once per intent, respects the kill switch."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agents.executor.agent import Executor
from agents.ingestor.feed import Quote, tick_of
from agents.settings import Settings
from bus import Credentials, Emit, Signer
from contracts import (
    Identity,
    OrderFilled,
    OrderRejected,
    RiskApproved,
    TradingState,
)
from contracts import subjects as s
from contracts import topology as t
from ops.control import set_trading_state
from tests.support import events
from tests.support.agents import ConnectAs, run_agent, stop_agent
from tests.support.pipeline import (
    count_subject,
    eventually,
    publisher_for,
    read_subject,
)

pytestmark = pytest.mark.integration


def approval(quantity: str = "1", **intent_fields: Any) -> RiskApproved:
    intent = events.trade_intent(symbol="ETH-USD", quantity=quantity, **intent_fields)
    return events.risk_approved(intent, reference_price="3000")


def approved(event: RiskApproved) -> Emit:
    """The risk gate's event on its subject, `risk.approved.<SYMBOL>.<intent id>`."""
    return events.emit(event)


async def publish_tick(connect_as: ConnectAs, certs_dir: Path, price: str) -> None:
    nc = await connect_as(Identity.INGESTOR)
    tick = tick_of(Quote("ETH-USD", Decimal(price)))
    await publisher_for(nc, certs_dir, Identity.INGESTOR).publish(
        [Emit("market.tick.ETH-USD", tick)]
    )


async def _count(ops_nc, subject: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count_subject(ops_nc, t.ORDERS, subject) >= n


async def test_market_order_fills_at_last_price_plus_slippage_with_fee(
    ops_nc, connect_as: ConnectAs, certs_dir: Path, agent_settings: Settings
) -> None:
    await publish_tick(connect_as, certs_dir, "3000.00")
    agent = Executor(agent_settings)
    task = await run_agent(agent)
    risk = await connect_as(Identity.RISK)

    await publisher_for(risk, certs_dir, Identity.RISK).publish([approved(approval("2"))])
    await eventually(lambda: _count(ops_nc, "order.filled.ETH-USD.*", 1))
    await stop_agent(agent, task)

    [msg] = await read_subject(ops_nc, t.ORDERS, "order.filled.ETH-USD.*")
    fill = OrderFilled.model_validate_json(msg.data)
    assert fill.fill_price == Decimal("3000.6000")  # +2 bps slippage on a buy
    assert fill.fill_quantity == Decimal(2)
    assert fill.fee == Decimal("0.60")  # 1 bp of 6001.20


async def test_redelivered_approval_never_fills_twice(
    ops_nc, connect_as: ConnectAs, certs_dir: Path, agent_settings: Settings
) -> None:
    # Arrange: the same approval published twice with distinct message ids (so the stream's
    # de-duplication cannot absorb it): only the executor's order record can.
    await publish_tick(connect_as, certs_dir, "3000.00")
    agent = Executor(agent_settings)
    task = await run_agent(agent)
    risk = await connect_as(Identity.RISK)
    event = approval()
    signer = Signer.from_file(Identity.RISK, Credentials(Identity.RISK, certs_dir).signing_key_file)
    payload = event.model_dump_json().encode()
    subject = s.intent_event(s.RISK_APPROVED, "ETH-USD", event.intent_id)

    # Act
    for _ in range(2):
        await risk.jetstream().publish(subject, payload, headers=signer.headers(subject, payload))

    async def both_consumed() -> bool:
        info = await ops_nc.jetstream().consumer_info(t.RISK, "executor")
        return (
            info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq == 2
        )

    await eventually(both_consumed)
    await stop_agent(agent, task)

    # Assert
    assert await count_subject(ops_nc, t.ORDERS, "order.filled.ETH-USD.*") == 1


async def test_when_halted_queued_approval_is_rejected_with_reason_halted(
    ops_nc, connect_as: ConnectAs, certs_dir: Path, agent_settings: Settings
) -> None:
    # Arrange: the kill switch is engaged before the executor starts; it starts halted.
    await publish_tick(connect_as, certs_dir, "3000.00")
    ops_signer = Signer.from_file(
        Identity.OPS, Credentials(Identity.OPS, certs_dir).signing_key_file
    )
    await set_trading_state(ops_nc, ops_signer, TradingState.HALTED, "test")
    agent = Executor(agent_settings)
    task = await run_agent(agent)
    assert agent.trading_state is TradingState.HALTED
    risk = await connect_as(Identity.RISK)

    # Act
    await publisher_for(risk, certs_dir, Identity.RISK).publish([approved(approval())])
    await eventually(lambda: _count(ops_nc, "order.rejected.ETH-USD.*", 1))
    await stop_agent(agent, task)

    # Assert
    [msg] = await read_subject(ops_nc, t.ORDERS, "order.rejected.ETH-USD.*")
    assert OrderRejected.model_validate_json(msg.data).reason == "halted"
    assert await count_subject(ops_nc, t.ORDERS, "order.filled.ETH-USD.*") == 0


async def test_limit_order_that_is_not_marketable_is_rejected_ioc(
    ops_nc, connect_as: ConnectAs, certs_dir: Path, agent_settings: Settings
) -> None:
    await publish_tick(connect_as, certs_dir, "3000.00")
    agent = Executor(agent_settings)
    task = await run_agent(agent)
    risk = await connect_as(Identity.RISK)

    await publisher_for(risk, certs_dir, Identity.RISK).publish(
        [approved(approval(order_type="limit", limit_price="2900"))]
    )
    await eventually(lambda: _count(ops_nc, "order.rejected.ETH-USD.*", 1))
    await stop_agent(agent, task)

    [msg] = await read_subject(ops_nc, t.ORDERS, "order.rejected.ETH-USD.*")
    assert OrderRejected.model_validate_json(msg.data).reason == "not_marketable"
