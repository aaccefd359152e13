"""Throw-away settings: the one writer of a scratch `tradeops.toml` for a data dir.

The demo, the benchmarks and the tests each start a stack in a data dir of their own and throw
it away afterwards. `write_scratch_config` writes that data dir's settings: every port
(nats-server's client and monitoring ports, each agent's health port) one that was free on
loopback a moment ago, so that scratch stacks run side by side and beside an operator's stack;
everything else at its default unless the caller asks otherwise. The file is rendered by the same
TOML writer as `tradeops config init` (`ops.config.Renderer`) and read back before it is kept, so
a key the settings do not have fails here rather than being dropped.

An "open universe" (`OPEN_PRICES`, `OPEN_LIMITS`, `OPEN_CASH_USD`) is for load: two 24/7
symbols, rich accounts and limits no test reaches, so that intents fill unless what is under
test stops them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agents.settings import Settings
from contracts import AGENTS
from ops.config import FILE_NAME, Renderer
from ops.stack.natsd import free_port

OPEN_PRICES: Final[Mapping[str, str]] = {"BTC-USD": "65000", "ETH-USD": "3200"}
"""Start prices of the open universe's symbols (both traded around the clock)."""
OPEN_CASH_USD: Final = "1000000000"
"""Starting cash of an account in the open universe."""
OPEN_LIMITS: Final[Mapping[str, int | str]] = {
    "rate_limit_per_s": 100_000_000,
    "max_notional_usd": "100000000",
    "concentration_pct": "100",
    "max_leverage": "1000",
}
"""Risk limits no load reaches (the other limits stay at their defaults)."""


def open_instrument(symbol: str, start_price: str) -> dict[str, str]:
    """A symbol traded around the clock whose order and position caps no load reaches."""
    return {
        "symbol": symbol,
        "calendar": "24/7",
        "max_quantity": "1000",
        "position_limit": "1000000",
        "start_price": start_price,
    }


def write_scratch_config(
    data_dir: Path,
    *,
    feed_interval_ms: int | None = None,
    limits: Mapping[str, int | float | str] | None = None,
    accounts: Mapping[str, str] | None = None,
    prices: Mapping[str, str] | None = None,
    storage: Mapping[str, Any] | None = None,
    analyst: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<data_dir>/tradeops.toml` for a throw-away stack (creating the dir); return it.

    Ports are always fresh free ones; each other argument left out keeps its defaults.
    `feed_interval_ms`: the ingestor's tick interval. `limits`: risk limits by name (the rest at
    their defaults). `accounts`: name to starting cash in USD, replacing the default accounts.
    `prices`: symbol to start price, replacing the default instruments by open ones
    (`open_instrument`). `storage`: the `[storage]` table (stream limits by name under
    `streams`), its metrics port always a fresh one. `analyst`: the `[analyst]` table (provider,
    base_url, model, ...), the rest at its defaults.
    """
    doc: dict[str, Any] = {
        "nats_port": free_port(),
        "nats_monitor_port": free_port(),
        "health_ports": {str(agent): free_port() for agent in AGENTS},
        "storage": {"metrics_port": free_port(), **(storage or {})},
    }
    if prices is not None:
        doc["instruments"] = [open_instrument(sym, price) for sym, price in prices.items()]
    if accounts is not None:
        doc["accounts"] = [
            {"name": name, "starting_cash_usd": cash} for name, cash in accounts.items()
        ]
    if limits is not None:
        doc["limits"] = dict(limits)
    if feed_interval_ms is not None:
        doc["feed"] = {"interval_ms": feed_interval_ms}
    if analyst is not None:
        doc["analyst"] = dict(analyst)
    text = "\n".join(Renderer(docs=False).table(Settings, doc)) + "\n"
    if tomllib.loads(text) != doc:  # the renderer leaves out what the settings do not have
        raise ValueError(f"a key the settings do not have, in {doc}")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    path.write_text(text)
    return path
