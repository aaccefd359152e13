"""Health, metrics and monitoring ports listen on loopback only unless configured otherwise."""

from __future__ import annotations

from pathlib import Path

from agents.settings import Settings
from bus.identity import CertPaths
from ops.pki.natsconf import NatsLayout, render_single_node


def test_agent_health_endpoints_bind_loopback_by_default() -> None:
    assert Settings().health_host == "127.0.0.1"


def test_nats_monitoring_port_binds_loopback_whatever_the_client_listen_address() -> None:
    layout = NatsLayout(CertPaths(Path("/c")), Path("/s"), host="0.0.0.0", monitor_port=8999)
    text = render_single_node(layout)
    assert 'http: "127.0.0.1:8999"' in text
    assert 'listen: "0.0.0.0:' in text
