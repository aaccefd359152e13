"""Fixtures that start the real parts from the installed wheels."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from agents.ingestor.config import Feed
from agents.settings import CONFIG_ENV, Settings
from bus import Credentials, connect, provision
from bus.identity import CertPaths
from contracts import AGENTS, Identity
from ops.pki.certs import init_certs
from ops.pki.natsconf import NatsLayout
from ops.stack.natsd import NatsServer, free_port
from tests.support.agents import ConnectAs
from tests.support.pg import database_url, pg_url  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def no_settings_file_from_an_earlier_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_settings` names the file it read in TRADEOPS_CONFIG for the rest of the process (so
    `config show` can say where values came from); each test starts without one and drops it."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA and every identity's certificate and signing key, shared by the session."""
    data_dir = tmp_path_factory.mktemp("tradeops-certs")
    paths, _ = init_certs(data_dir)
    return paths.certs_dir


@pytest.fixture
async def nats_server(certs_dir: Path, tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A fresh nats-server (JetStream on file storage, mutual TLS, permissions) per test."""
    layout = NatsLayout(
        certs=CertPaths(certs_dir),
        store_dir=tmp_path / "jetstream",
        port=free_port(),
        monitor_port=free_port(),
    )
    server = NatsServer(layout, tmp_path / "nats.conf", tmp_path / "nats.log")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def connect_as(nats_server: NatsServer, certs_dir: Path) -> AsyncIterator[ConnectAs]:
    """Connect to the test server as an identity; every connection is closed afterwards."""
    opened: list[NATS] = []

    async def _connect(identity: Identity) -> NATS:
        nc = await connect(nats_server.layout.url, Credentials(identity, certs_dir))
        opened.append(nc)
        return nc

    yield _connect
    for nc in opened:
        if not nc.is_closed:
            await nc.close()


@pytest.fixture
async def ops_nc(connect_as: ConnectAs) -> NATS:
    """An ops connection on a provisioned server."""
    nc = await connect_as(Identity.OPS)
    await provision(nc.jetstream())
    return nc


@pytest.fixture
def agent_settings(nats_server: NatsServer, certs_dir: Path, tmp_path: Path) -> Settings:
    """Settings for agents under test: the test server, a private data dir, free health ports."""
    data_dir = tmp_path / "data"
    shutil.copytree(certs_dir, data_dir / "certs")
    return Settings(
        data_dir=data_dir,
        nats_url=nats_server.layout.url,
        health_ports={agent: free_port() for agent in AGENTS},
        feed=Feed(interval_ms=50),
    )


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A data dir outside pytest's tmp tree: embedded Postgres runs as another user when root,
    and pytest resets its tmp root to 0700, which would lock that user out."""
    path = Path(tempfile.mkdtemp(prefix="tradeops-test-"))
    yield path / "stack"
    shutil.rmtree(path, ignore_errors=True)
