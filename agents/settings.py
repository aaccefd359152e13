"""One settings model composed of the agents' sections (each beside its agent, in
`agents/<agent>/config.py`): defaults, then a TOML file, then `TRADEOPS_*` environment variables.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agents.analyst.config import AnalystSettings
from agents.common.config import ALWAYS_OPEN, Account, Instrument
from agents.executor.config import BrokerConfig
from agents.ingestor.config import Feed
from agents.risk.config import Limits, RiskMemory
from bus.limits import StorageSettings
from contracts import Identity

CONFIG_ENV = "TRADEOPS_CONFIG"


def _equity(symbol: str, position_limit: int, start_price: str) -> Instrument:
    return Instrument(
        symbol=symbol,
        max_quantity=Decimal(5000),
        position_limit=Decimal(position_limit),
        start_price=Decimal(start_price),
    )


def _default_instruments() -> list[Instrument]:
    d = Decimal
    return [
        _equity("AAPL", 10000, "190.00"),
        _equity("MSFT", 10000, "420.00"),
        _equity("NVDA", 10000, "130.00"),
        _equity("SPY", 5000, "560.00"),
        Instrument(
            symbol="BTC-USD", calendar=ALWAYS_OPEN, max_quantity=d(10), position_limit=d(20),
            start_price=d("65000.00"), volatility_bps=d(10),
        ),
        Instrument(
            symbol="ETH-USD", calendar=ALWAYS_OPEN, max_quantity=d(150), position_limit=d(300),
            start_price=d("3200.00"), volatility_bps=d(12),
        ),
    ]  # fmt: skip


def _default_health_ports() -> dict[Identity, int]:
    return {
        Identity.INGESTOR: 9101,
        Identity.ANALYST: 9102,
        Identity.RISK: 9103,
        Identity.EXECUTOR: 9104,
        Identity.LEDGER: 9105,
    }


class Settings(BaseSettings):
    """Everything configurable. Precedence: environment > TOML file > defaults."""

    model_config = SettingsConfigDict(
        env_prefix="TRADEOPS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: Path = Path(".tradeops")
    database_url: str | None = None
    """Postgres URL; when unset, `tradeops up` starts an embedded Postgres in the data dir."""
    nats_url: str | None = None
    """NATS URL(s), comma-separated; when unset, the embedded server's URL."""
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    stream_replicas: int = 1
    health_host: str = "127.0.0.1"
    health_ports: dict[Identity, int] = Field(default_factory=_default_health_ports)
    instruments: list[Instrument] = Field(default_factory=_default_instruments)
    accounts: list[Account] = Field(
        default_factory=lambda: [Account(name="paper-1", starting_cash_usd=Decimal("1000000"))]
    )
    limits: Limits = Limits()
    risk: RiskMemory = RiskMemory()
    analyst: AnalystSettings = AnalystSettings()
    broker: BrokerConfig = BrokerConfig()
    feed: Feed = Feed()
    batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    storage: StorageSettings = StorageSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)

    def instrument(self, symbol: str) -> Instrument | None:
        return next((i for i in self.instruments if i.symbol == symbol), None)

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)

    def nats_servers(self) -> list[str]:
        if self.nats_url:
            return [u.strip() for u in self.nats_url.split(",") if u.strip()]
        return [f"tls://127.0.0.1:{self.nats_port}"]

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"


def load_settings(data_dir: Path | None = None, config: Path | None = None) -> Settings:
    """Load settings; a `tradeops.toml` in the data dir is used when no file is named."""
    if config is None and data_dir is not None and (data_dir / "tradeops.toml").exists():
        config = data_dir / "tradeops.toml"
    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)  # type: ignore[arg-type]
