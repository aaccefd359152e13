"""`ops.stack.scratch`: the throw-away `tradeops.toml` loads back as asked, on fresh ports."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agents.settings import Settings, load_settings
from contracts import AGENTS
from ops.stack.scratch import OPEN_CASH_USD, OPEN_LIMITS, OPEN_PRICES, write_scratch_config


def test_with_nothing_asked_only_the_ports_differ_from_the_defaults(tmp_path: Path) -> None:
    path = write_scratch_config(tmp_path / "new" / "stack")

    loaded = load_settings(path.parent)

    defaults = Settings.model_construct()
    ports = [loaded.nats_port, loaded.nats_monitor_port, *loaded.health_ports.values()]
    assert path == tmp_path / "new" / "stack" / "tradeops.toml"
    assert set(loaded.health_ports) == set(AGENTS)
    assert len(set(ports)) == len(ports) == 2 + len(AGENTS)
    assert (loaded.limits, loaded.feed, loaded.accounts, loaded.instruments) == (
        defaults.limits,
        defaults.feed,
        defaults.accounts,
        defaults.instruments,
    )


def test_the_open_universe_loads_back_as_written(tmp_path: Path) -> None:
    write_scratch_config(
        tmp_path,
        feed_interval_ms=100,
        limits={**OPEN_LIMITS, "stale_price_s": 600},
        accounts={"a": OPEN_CASH_USD, "b": "5"},
        prices=OPEN_PRICES,
    )

    loaded = load_settings(tmp_path)

    assert loaded.feed.interval_ms == 100
    assert loaded.limits.rate_limit_per_s == OPEN_LIMITS["rate_limit_per_s"]
    assert loaded.limits.max_leverage == Decimal("1000") and loaded.limits.stale_price_s == 600
    assert [(a.name, str(a.starting_cash_usd)) for a in loaded.accounts] == [
        ("a", OPEN_CASH_USD),
        ("b", "5"),
    ]
    assert {i.symbol: (i.calendar, str(i.start_price)) for i in loaded.instruments} == {
        sym: ("24/7", price) for sym, price in OPEN_PRICES.items()
    }


def test_a_limit_the_settings_do_not_have_is_refused_not_dropped(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the settings do not have"):
        write_scratch_config(tmp_path, limits={"max_notional": "1"})

    assert not (tmp_path / "tradeops.toml").exists()
