"""compose.yaml against the topology and the identities (Docker cannot run here: it is read)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from agents.settings import Settings
from contracts import AGENTS, Identity
from ops.pki.certs import CLUSTER_HOSTNAMES, ROUTE, SERVER, init_certs
from ops.pki.natsconf import (
    REFERENCE_CERTS,
    REFERENCE_CLUSTER,
    REFERENCE_STORE,
    render_cluster_node,
)

ROOT = Path(__file__).resolve().parents[3]
CERTS_IN_AGENT = PurePosixPath("/data/certs")
NATS_CONFIG_IN_NODE = "/etc/nats/nats.conf"
NODES = [node.layout.server_name for node in REFERENCE_CLUSTER.nodes]


def _defaults(text: str) -> str:
    """Interpolate `${NAME:-default}` with its default, as compose does with NAME unset."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(_defaults((ROOT / "compose.yaml").read_text()))
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Return the service's bind mounts and volumes as target -> source."""
    out: dict[str, str] = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        out[target] = source
    return out


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def health_port(agent: Identity) -> int:
    return Settings(data_dir=Path("/data")).health_ports[agent]


# -- agents ------------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_service_runs_its_agent_on_the_data_dir(
    agent: Identity, services: dict[str, Any]
) -> None:
    service = services[str(agent)]
    assert service["command"] == ["tradeops", "agent", "run", str(agent), "--data-dir", "/data"]
    assert service["build"] == "."


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_mounts_only_its_own_certificate_key_signing_key_and_the_ca(
    agent: Identity, services: dict[str, Any]
) -> None:
    certs = {
        PurePosixPath(target).name: source
        for target, source in mounts(services[str(agent)]).items()
        if PurePosixPath(target).parent == CERTS_IN_AGENT
    }
    own = {"ca.pem", f"{agent}.pem", f"{agent}-key.pem", f"{agent}-signing-key.pem"}
    assert own <= set(certs)
    # Each file is mounted under its own name, one by one (never the whole certs directory).
    assert all(PurePosixPath(source).name == name for name, source in certs.items())
    private = {n for n in certs if n.endswith("-key.pem")}
    assert private == {f"{agent}-key.pem", f"{agent}-signing-key.pem"}
    # Besides its own files, at most public verify keys (ops' signs the kill switch).
    assert set(certs) - own <= {f"{i}-signing.pub" for i in Identity}
    assert f"{Identity.OPS}-signing.pub" in certs


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_healthcheck_asks_readyz_on_its_configured_port(
    agent: Identity, services: dict[str, Any]
) -> None:
    service = services[str(agent)]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert f"http://127.0.0.1:{health_port(agent)}/readyz" in " ".join(test)
    assert not any(k.startswith("TRADEOPS_HEALTH_PORTS") for k in env(service))
    assert env(service)["TRADEOPS_HEALTH_HOST"] == "0.0.0.0"  # Prometheus scrapes by name


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_connects_to_all_three_nodes_with_r3_and_the_compose_database(
    agent: Identity, services: dict[str, Any]
) -> None:
    variables = env(services[str(agent)])
    settings = Settings(
        nats_url=variables["TRADEOPS_NATS_URL"],
        stream_replicas=int(variables["TRADEOPS_STREAM_REPLICAS"]),
        database_url=variables["TRADEOPS_DATABASE_URL"],
    )
    assert settings.nats_servers() == [f"tls://{n}:4222" for n in NODES]
    assert settings.stream_replicas == 3
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://tradeops:")
    assert settings.database_url.endswith("@postgres:5432/tradeops")
    depends = services[str(agent)]["depends_on"]
    assert depends["provision"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_analyst_runs_two_replicas_on_its_shared_durable_consumer(
    services: dict[str, Any],
) -> None:
    assert services["analyst"]["deploy"]["replicas"] == 2
    assert "container_name" not in services["analyst"]
    assert "ports" not in services["analyst"]


def test_every_mounted_certificate_file_is_one_certs_init_creates(
    services: dict[str, Any], tmp_path: Path
) -> None:
    paths, _ = init_certs(tmp_path)
    sources = {
        PurePosixPath(source).name
        for service in services.values()
        for source in mounts(service).values()
        if source.startswith("./.tradeops/certs/")
    }
    assert sources
    assert all((paths.certs_dir / name).exists() for name in sources), sources


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_passes_on_200_and_fails_on_503(
    status: int, healthy: bool, services: dict[str, Any], readyz_server: HTTPServer
) -> None:
    # Arrange: the ingestor's healthcheck, aimed at a local server answering `status`
    _Readyz.status = status
    port = health_port(Identity.INGESTOR)
    argv = [
        arg.replace(f":{port}/", f":{readyz_server.server_address[1]}/")
        for arg in services["ingestor"]["healthcheck"]["test"][1:]
    ]
    assert argv[0] == "python"

    # Act
    done = subprocess.run([sys.executable, *argv[1:]], check=False, capture_output=True, timeout=20)

    # Assert
    assert (done.returncode == 0) is healthy


# -- NATS, provisioning, Postgres ---------------------------------------------------------------


@pytest.mark.parametrize("index", range(3))
def test_nats_node_runs_its_committed_cluster_config_with_server_and_route_certs(
    index: int, services: dict[str, Any]
) -> None:
    name = NODES[index]
    service = services[name]
    assert service["hostname"] == name
    assert service["command"] == ["nats-server", "--config", NATS_CONFIG_IN_NODE]
    mounted = mounts(service)
    assert mounted[NATS_CONFIG_IN_NODE] == f"./nats/cluster/{name}.conf"
    wanted = {
        REFERENCE_CERTS.ca,
        REFERENCE_CERTS.cert(SERVER),
        REFERENCE_CERTS.key(SERVER),
        REFERENCE_CERTS.cert(ROUTE),
        REFERENCE_CERTS.key(ROUTE),
    }
    certs = {t for t in mounted if t.startswith(f"{REFERENCE_CERTS.certs_dir}/")}
    assert certs == {str(p) for p in wanted}
    assert not mounted[str(REFERENCE_STORE)].startswith(".")  # a named volume per node
    assert "healthcheck" in service


@pytest.mark.parametrize("index", range(3))
def test_committed_cluster_config_is_up_to_date(index: int) -> None:
    name = NODES[index]
    committed = (ROOT / "nats" / "cluster" / f"{name}.conf").read_text()
    assert committed == render_cluster_node(REFERENCE_CLUSTER, index), (
        "nats/cluster is stale: run `tradeops nats config --cluster nats/cluster`"
    )


def test_cluster_configs_route_to_the_other_compose_nodes() -> None:
    for index, name in enumerate(NODES):
        text = render_cluster_node(REFERENCE_CLUSTER, index)
        routes = set(re.findall(r'"tls://([\w-]+):6222"', text))
        assert routes == set(NODES) - {name}
        assert "jetstream {" in text and 'name: "tradeops"' in text
        assert f'client_advertise: "{name}:4222"' in text


def test_server_and_route_certificates_name_the_compose_hosts(tmp_path: Path) -> None:
    paths, _ = init_certs(tmp_path)
    for name in (SERVER, ROUTE):
        cert = x509.load_pem_x509_certificate(paths.cert(name).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(CLUSTER_HOSTNAMES) <= set(sans.get_values_for_type(x509.DNSName))
    route = x509.load_pem_x509_certificate(paths.cert(ROUTE).read_bytes())
    usage = route.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
    assert set(CLUSTER_HOSTNAMES) >= {f"nats-{n}" for n in (1, 2, 3)}


def test_provision_runs_once_as_ops_after_every_node_is_healthy(services: dict[str, Any]) -> None:
    service = services["provision"]
    assert service["command"][:2] == ["tradeops", "provision"]
    assert service["restart"] == "no"
    assert {PurePosixPath(t).name for t in mounts(service)} == {"ca.pem", "ops.pem", "ops-key.pem"}
    assert env(service)["TRADEOPS_STREAM_REPLICAS"] == "3"
    assert {n: d["condition"] for n, d in service["depends_on"].items()} == dict.fromkeys(
        NODES, "service_healthy"
    )


def test_postgres_16_with_the_database_the_agents_use(services: dict[str, Any]) -> None:
    service = services["postgres"]
    assert service["image"].startswith("postgres:16")
    assert env(service)["POSTGRES_USER"] == env(service)["POSTGRES_DB"] == "tradeops"
    assert "pg_isready" in " ".join(service["healthcheck"]["test"])


# -- monitoring ---------------------------------------------------------------------------------


def test_prometheus_mounts_the_compose_config_and_its_alert_rules(services: dict[str, Any]) -> None:
    mounted = mounts(services["prometheus"])
    assert mounted["/etc/prometheus/prometheus.yml"] == "./ops/monitoring/prometheus-compose.yml"
    assert mounted["/etc/prometheus/alerts.yml"] == "./ops/monitoring/alerts.yml"
    config = yaml.safe_load((ROOT / "ops/monitoring/prometheus-compose.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # relative to /etc/prometheus/prometheus.yml
    scraped = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert scraped == {(str(a), health_port(a)) for a in AGENTS}


def test_grafana_mounts_provisioning_and_the_dashboards_where_the_provider_reads(
    services: dict[str, Any],
) -> None:
    mounted = mounts(services["grafana"])
    assert mounted["/etc/grafana/provisioning"] == "./ops/monitoring/grafana/provisioning"
    providers = [
        provider
        for path in (ROOT / "ops/monitoring/grafana/provisioning/dashboards").glob("*.yml")
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    [target] = [t for t, s in mounted.items() if s == "./ops/monitoring/grafana/dashboards"]
    assert {p["options"]["path"] for p in providers} == {target}


def test_every_mounted_repository_path_exists(services: dict[str, Any]) -> None:
    sources = {
        source
        for service in services.values()
        for source in mounts(service).values()
        if source.startswith("./") and not source.startswith("./.tradeops/")
    }
    missing = sorted(s for s in sources if not (ROOT / s).exists())
    assert not missing


def test_dockerfile_installs_cpu_torch_before_the_project() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    torch = next(i for i, x in enumerate(lines) if "torch==2.13.0" in x and "pip install" in x)
    project = next(i for i, x in enumerate(lines) if x.strip().startswith("RUN pip install ."))
    assert torch < project
    assert "whl/cpu" in "\n".join(lines)
