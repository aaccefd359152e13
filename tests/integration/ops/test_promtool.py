"""Prometheus's own checker accepts ops/monitoring, and the alert rules fire on synthetic series.

promtool comes from Debian's `prometheus` package; `ops/tools/ensure-command.sh promtool
prometheus` installs it (the Makefile's test target runs it first). A missing promtool fails,
never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "ops" / "monitoring"
ENSURE = "ops/tools/ensure-command.sh"
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
"""Grafana's range variables, replaced by a fixed duration so promtool can parse the query."""


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            f"promtool not found on PATH: run `sh {ENSURE} promtool prometheus` (installs "
            "Debian's `prometheus` package, which provides promtool), then run the tests again"
        )
    return path


def _run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=MONITORING,
    )


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-compose.yml"])
def test_promtool_accepts_the_prometheus_config(promtool: str, config: str) -> None:
    result = _run(promtool, "check", "config", "--lint-fatal", MONITORING / config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", "--lint-fatal", MONITORING / "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout), result.stdout


def test_alert_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", MONITORING / "alerts_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_unit_tests_fire_the_kill_switch_and_dead_letter_alerts() -> None:
    suite = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())
    fired = {
        case["alertname"]
        for test in suite["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }

    assert {"TradeopsKillSwitchEngaged", "TradeopsDeadLettersPresent"} <= fired


def _dashboard_queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads(
        (MONITORING / "grafana" / "dashboards" / "tradeops.json").read_text()
    )
    queries: list[str] = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, duration in GRAFANA_RANGES.items():
                expr = expr.replace(variable, duration)
            queries.append(expr)
    return queries


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    queries = _dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}:check", "expr": expr}
                    for i, expr in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))

    result = _run(promtool, "check", "rules", path)

    assert queries
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
