"""The committed reference nats-server configuration matches what the code renders."""

from __future__ import annotations

from pathlib import Path

from ops.pki.natsconf import REFERENCE_LAYOUT, render_single_node

ROOT = Path(__file__).resolve().parents[3]


def test_committed_single_node_config_is_up_to_date() -> None:
    committed = (ROOT / "nats" / "single-node.conf").read_text()
    assert committed == render_single_node(REFERENCE_LAYOUT), (
        "nats/single-node.conf is stale: run `tradeops nats config --out nats/single-node.conf`"
    )


def test_monitoring_port_binds_loopback_only() -> None:
    text = render_single_node(REFERENCE_LAYOUT)
    assert 'http: "127.0.0.1:8222"' in text
    assert "verify_and_map: true" in text
