"""ops/monitoring refers only to metrics the code exports, and scrapes every agent.

Also the two metric modules the monitoring added: consumer lag (agents/lag.py) and intent
latency (agents/latency.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import agents.analyst.metrics
import agents.common.lag
import agents.executor.metrics
import agents.ingestor.metrics
import agents.ledger.metrics
import agents.risk.metrics
import bus.metrics
from agents.common.lag import LagSampler, track_lag
from agents.ledger.metrics import FILLED_TO_POSTED, observe_postings
from agents.settings import Settings
from bus.limits import StorageSettings
from contracts import AGENTS, Identity, LedgerPosted, OrderFilled
from contracts import topology as t
from ops.storage import StorageMetrics
from tests.support import events
from tests.support.events import make_fill

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "ops" / "monitoring"
DOCS = ROOT / "knowledge" / "docs"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "tradeops.json"
AGENTS_JOB = "tradeops-agents"

METRIC_MODULES: tuple[ModuleType, ...] = (
    bus.metrics,
    agents.analyst.metrics,
    agents.ingestor.metrics,
    agents.risk.metrics,
    agents.executor.metrics,
    agents.common.lag,
    agents.ledger.metrics,
)
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}
TARGET_LABELS = frozenset({"job", "instance", "component"})
"""Labels Prometheus attaches to every scraped series (prometheus.yml)."""
REQUIRED_ALERTS = {
    "TradeopsAgentDown",
    "TradeopsConsumerLagGrowing",
    "TradeopsDeadLettersPresent",
    "TradeopsKillSwitchEngaged",
    "TradeopsAnalystDegraded",
    "TradeopsPermissionViolation",
}

_SELECTOR = re.compile(r'(?<![\w:"])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}')
_MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_IDENTIFIER = re.compile(r"(?<![\w:$])([a-zA-Z_:][\w:]*)")


# -- what the code exports ---------------------------------------------------------------------


def _code_metrics() -> dict[str, frozenset[str]]:
    """Return every series name the code exports, with its label names."""
    found: dict[str, frozenset[str]] = {}
    for module in METRIC_MODULES:
        for value in vars(module).values():
            if not isinstance(value, MetricWrapperBase):
                continue
            (family,) = value.describe()
            labels = frozenset(value._labelnames)
            for suffix in SUFFIXES[family.type]:
                found[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return found


def _storage_metrics() -> dict[str, frozenset[str]]:
    """Return the storage exporter's series (its own registry, served by ops, not the agents)."""
    metrics = StorageMetrics(alert_at_percent=80.0)
    metrics.update([])
    found: dict[str, frozenset[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            found[family.name] = frozenset(value._labelnames)
    return found


def _registered_families() -> set[str]:
    return {family.name for family in REGISTRY.collect()}


# -- what the configuration refers to ----------------------------------------------------------


def _load_yaml(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MONITORING / name).read_text())
    assert isinstance(data, dict)
    return data


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _recorded() -> dict[str, frozenset[str]]:
    """Return each recording rule's name with the labels its `by (...)` keeps."""
    recorded: dict[str, frozenset[str]] = {}
    for rule in _rules():
        if "record" in rule:
            kept = _GROUPING.search(rule["expr"])
            assert kept, f"{rule['record']}: aggregate with an explicit `by (...)`"
            recorded[rule["record"]] = frozenset(_split(kept.group(1)))
    return recorded


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels() -> Iterator[dict[str, Any]]:
    for panel in _dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels()
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


def _metric_names(expr: str) -> set[str]:
    """Return the tradeops series (and recorded series) an expression reads."""
    bare = _STRING.sub('""', expr)
    return {
        name
        for name in _IDENTIFIER.findall(bare)
        if name.startswith("tradeops_") or ":" in name or name == "up"
    }


def _problems(where: str, expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """Return what in `expr` names a series or a label that nothing exports."""
    problems = [
        f"{where}: unknown series {name}" for name in _metric_names(expr) if name not in known
    ]
    readable = set(TARGET_LABELS)
    for name in _metric_names(expr) & known.keys():
        readable |= known[name]
    for name, matchers in _SELECTOR.findall(expr):
        if name in known:
            for label in _MATCHER.findall(matchers):
                if label not in known[name] | TARGET_LABELS:
                    problems.append(f"{where}: {name} has no label {label!r}")
    for names in _GROUPING.findall(expr):
        for label in _split(names):
            if label not in readable:
                problems.append(f"{where}: no series of the expression has label {label!r}")
    return problems


@pytest.fixture(scope="module")
def known() -> dict[str, frozenset[str]]:
    up = {"up": TARGET_LABELS}
    return {**_code_metrics(), **_storage_metrics(), **_recorded(), **up}


# -- metrics referenced exist ------------------------------------------------------------------


def test_code_metrics_are_in_the_default_registry_the_agents_serve() -> None:
    families = {name.removesuffix("_total") for name in _code_metrics()}
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in families}

    assert families <= _registered_families()


def test_every_series_and_label_in_the_alert_rules_is_exported(
    known: dict[str, frozenset[str]],
) -> None:
    problems = [
        problem
        for rule in _rules()
        for problem in _problems(rule.get("alert") or rule["record"], rule["expr"], known)
    ]

    assert problems == []


def test_every_series_and_label_in_the_dashboard_is_exported(
    known: dict[str, frozenset[str]],
) -> None:
    problems = [
        problem for title, expr in _dashboard_exprs() for problem in _problems(title, expr, known)
    ]

    assert problems == []


def test_every_metric_of_the_code_is_on_the_dashboard_or_in_an_alert() -> None:
    used = {name for _title, expr in _dashboard_exprs() for name in _metric_names(expr)}
    used |= {name for rule in _rules() for name in _metric_names(rule["expr"])}
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in _code_metrics()}

    unused = {f for f in families if not any(u.startswith(f) for u in used)}

    assert unused == set()


# -- scrape targets ----------------------------------------------------------------------------


def _agents_job(config: dict[str, Any]) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = config["scrape_configs"]
    (job,) = [j for j in jobs if j["job_name"] == AGENTS_JOB]
    return job


def _default_ports() -> dict[Identity, int]:
    factory = Settings.model_fields["health_ports"].default_factory
    assert factory is not None
    ports = factory()  # type: ignore[call-arg]
    assert isinstance(ports, dict)
    return ports


def test_every_agent_has_a_loopback_scrape_target_on_its_default_health_port() -> None:
    host = Settings.model_fields["health_host"].default
    job = _agents_job(_load_yaml("prometheus.yml"))
    targets = {
        target: group["labels"]["component"]
        for group in job["static_configs"]
        for target in group["targets"]
    }

    expected = {f"{host}:{port}": str(agent) for agent, port in _default_ports().items()}

    assert targets == expected
    assert set(expected.values()) == {str(a) for a in AGENTS}


def test_every_agent_has_a_compose_scrape_target_by_service_name() -> None:
    job = _agents_job(_load_yaml("prometheus-compose.yml"))
    targets = {f"{name}:{sd['port']}" for sd in job["dns_sd_configs"] for name in sd["names"]}
    relabel = job["relabel_configs"]

    expected = {f"{agent}:{port}" for agent, port in _default_ports().items()}

    assert targets == expected
    assert {"source_labels": ["__meta_dns_name"], "target_label": "component"} in relabel


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_the_storage_exporter_is_scraped_on_its_default_port(config: str) -> None:
    jobs = _load_yaml(config)["scrape_configs"]
    (job,) = [j for j in jobs if j["job_name"] == "tradeops-storage"]
    (target,) = [t for group in job["static_configs"] for t in group["targets"]]

    assert target.endswith(f":{StorageSettings().metrics_port}")


def test_both_prometheus_configs_load_the_same_rules_and_scrape_the_same_way() -> None:
    local, compose = _load_yaml("prometheus.yml"), _load_yaml("prometheus-compose.yml")
    local_job, compose_job = _agents_job(local), _agents_job(compose)

    assert local["rule_files"] == compose["rule_files"] == ["alerts.yml"]
    for key in ("scrape_interval", "scrape_timeout", "metrics_path"):
        assert local_job[key] == compose_job[key]


# -- alerts ------------------------------------------------------------------------------------


def test_the_required_alerts_exist() -> None:
    assert {rule["alert"] for rule in _alerts()} >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_each_alert_has_a_duration_a_severity_and_a_runbook_that_exists(
    rule: dict[str, Any],
) -> None:
    annotations = rule["annotations"]
    document, _, heading = annotations["runbook"].partition("#")
    path = ROOT / document

    assert "for" in rule
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert annotations["summary"] and annotations["description"]
    assert path.parent == DOCS and path.is_file(), f"no runbook {document}"
    assert f"\n## {heading}\n" in path.read_text(), f"{document} has no section {heading!r}"


def test_agent_down_covers_every_agent_even_with_nothing_to_scrape() -> None:
    (rule,) = [r for r in _alerts() if r["alert"] == "TradeopsAgentDown"]

    for agent in AGENTS:
        assert f'component="{agent}"' in rule["expr"]


# -- dashboard ---------------------------------------------------------------------------------


def test_dashboard_panels_are_laid_out_and_query_the_provisioned_datasource() -> None:
    datasource = _load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    panels = list(_panels())
    ids = [panel["id"] for panel in panels]

    assert _dashboard()["uid"] == "tradeops"
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_dashboard_provider_loads_the_mounted_dashboards_folder() -> None:
    provider = _load_yaml("grafana/provisioning/dashboards/tradeops.yml")["providers"][0]

    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize(
    "topic",
    [
        "tradeops_messages_processed_total",
        "tradeops_handler_seconds_bucket",
        "tradeops_intent_latency_seconds_bucket",
        "tradeops_risk_rejections_total",
        "tradeops_consumer_lag_messages",
        "instance_reason:tradeops_dead_letters:sum",
        "tradeops_trading_state",
        "tradeops_analyst_calls_total",
        "tradeops_analyst_degraded_total",
        "tradeops_analyst_tokens_total",
        "tradeops_permission_violations_total",
    ],
)
def test_dashboard_shows(topic: str) -> None:
    assert any(topic in expr for _title, expr in _dashboard_exprs())


# -- consumer lag ------------------------------------------------------------------------------


class _FakeJetStream:
    """Answers CONSUMER.INFO from a table; a missing entry is a timeout (how a denial looks)."""

    def __init__(self, table: dict[str, tuple[int, int]]) -> None:
        self.table = table

    async def consumer_info(  # nats-py's signature, timeout included
        self,
        stream: str,
        consumer: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Any:
        if consumer not in self.table:
            raise TimeoutError
        pending, ack_pending = self.table[consumer]
        return SimpleNamespace(num_pending=pending, num_ack_pending=ack_pending)


def _lag(agent: str, consumer: str, name: str = "tradeops_consumer_lag_messages") -> float | None:
    return REGISTRY.get_sample_value(name, {"agent": agent, "consumer": consumer})


async def test_lag_sample_publishes_pending_and_ack_pending_per_consumer() -> None:
    agent = f"risk-{uuid.uuid4().hex[:6]}"
    js = _FakeJetStream({"risk": (42, 7), "risk-orders": (0, 3)})
    sampler = LagSampler(js, t.consumers_of(Identity.RISK), agent)

    failed = await sampler.sample()

    assert set(failed) == {"risk-exhausted", "risk-orders-exhausted"}
    assert _lag(agent, "risk") == 42
    assert _lag(agent, "risk", "tradeops_consumer_ack_pending_messages") == 7
    assert _lag(agent, "risk-orders") == 0
    assert _lag(agent, "risk-exhausted") is None


async def test_lag_of_a_consumer_that_cannot_be_read_is_removed_not_left_stale() -> None:
    agent = f"ledger-{uuid.uuid4().hex[:6]}"
    js = _FakeJetStream({"ledger": (10, 1)})
    sampler = LagSampler(js, [t.consumer("ledger")], agent)
    await sampler.sample()

    del js.table["ledger"]
    failed = await sampler.sample()

    assert failed == ["ledger"]
    assert _lag(agent, "ledger") is None
    js.table["ledger"] = (3, 0)
    assert await sampler.sample() == []
    assert _lag(agent, "ledger") == 3


async def test_track_lag_keeps_running_through_failures_until_cancelled() -> None:
    agent = f"analyst-{uuid.uuid4().hex[:6]}"
    js = _FakeJetStream({})
    task = asyncio.create_task(track_lag(js, [t.consumer("analyst")], agent, interval_s=0.01))
    await asyncio.sleep(0.05)
    js.table["analyst"] = (5, 2)

    async with asyncio.timeout(2):
        while _lag(agent, "analyst") != 5:  # noqa: ASYNC110 - a gauge offers no event
            await asyncio.sleep(0.01)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- intent latency ----------------------------------------------------------------------------


def _posted(fill: OrderFilled, seconds_later: float) -> LedgerPosted:
    return events.ledger_posted(fill, lines=(), ts=fill.ts + timedelta(seconds=seconds_later))


def _latency(sample: str) -> float:
    value = REGISTRY.get_sample_value(
        f"tradeops_intent_latency_seconds_{sample}", {"stage": FILLED_TO_POSTED}
    )
    return value or 0.0


def test_postings_observe_fill_to_posting_latency_once_each() -> None:
    fresh, again = make_fill("buy", "10", "100"), make_fill("buy", "5", "100")
    booked_since = fresh.ts + timedelta(seconds=0.1)
    earlier = _posted(again, 0.05)  # booked on an earlier delivery
    rejected = ValueError("not booked")
    count, total = _latency("count"), _latency("sum")

    observed = observe_postings(
        [fresh, fresh, again, again],
        [_posted(fresh, 0.25), _posted(fresh, 0.25), earlier, rejected],
        booked_since=booked_since,
    )

    assert observed == 1
    assert _latency("count") - count == 1
    assert _latency("sum") - total == pytest.approx(0.25)


def test_clock_skew_is_recorded_as_zero_latency() -> None:
    fill = make_fill("sell", "1", "100")
    count, total = _latency("count"), _latency("sum")

    observe_postings([fill], [_posted(fill, -2.0)], booked_since=fill.ts - timedelta(seconds=5))

    assert _latency("count") - count == 1
    assert _latency("sum") - total == 0
