"""`tradeops up --detach`, `status --json`, `down` as a user runs them: separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import write_stack_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRADEOPS = [sys.executable, "-m", "ops.cli"]


def tradeops(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRADEOPS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_detach_status_down_then_restart_keeps_streams_and_rows(stack_dir: Path) -> None:
    write_stack_config(stack_dir)
    data = ["--data-dir", str(stack_dir)]

    # up: returns once everything is running, in the background
    up = tradeops("up", "--detach", *data)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status = tradeops("status", "--json", *data)
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["running"] is True
        assert doc["trading_state"] == "active"
        assert doc["nats"]["url"].startswith("tls://127.0.0.1:")
        assert doc["database"]["embedded"] is True
        names = set(doc["components"])
        assert names == {"nats-server", "ingestor", "analyst", "risk", "executor", "ledger"}
        pids = [c["pid"] for c in doc["components"].values()]
        assert all(isinstance(p, int) and alive(p) for p in pids)
        assert all(c["restarts"] == 0 for c in doc["components"].values())

        submitted = tradeops(
            "intent", "submit", "BTC-USD", "buy", "0.1", "--rationale", "rebalance", "--wait", *data
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert ": filled" in submitted.stdout
        intent_id = submitted.stdout.splitlines()[0].strip()
    finally:
        down = tradeops("down", *data)
    assert down.returncode == 0, down.stdout + down.stderr

    # no orphans: every process it started is gone, and status says so
    assert not any(alive(p) for p in pids)
    assert tradeops("status", *data).returncode == 3

    # a restart keeps every stream and every row
    assert tradeops("up", "--detach", *data).returncode == 0
    try:
        shown = tradeops("intent", "show", intent_id, "--json", *data)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert json.loads(shown.stdout)["outcome"] == "filled"
        positions = tradeops("positions", "--json", *data)
        held = {p["symbol"]: p["quantity"] for p in json.loads(positions.stdout)["positions"]}
        assert held == {"BTC-USD": "0.1"}
    finally:
        assert tradeops("down", *data).returncode == 0
