"""CPU per intent (`ops.bench.cpu`): only the stack's process trees count, a process started in
the window counts whole, and the load client is reported beside the stack, not in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.bench.cpu import (
    LOAD_CLIENT,
    CpuResult,
    CpuWindow,
    descendants,
    parent_pids,
    postmaster_pid,
    table,
    used_between,
)


def test_descendants_are_children_and_their_children_never_the_root_or_a_sibling() -> None:
    parents = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}

    assert descendants([10], parents) == {11, 12, 13}
    assert descendants([20, 12], parents) == {21}
    assert descendants([99], parents) == set()


def test_a_real_child_process_is_found_under_this_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        found = descendants([os.getpid()], parent_pids())
    finally:
        child.kill()
        child.wait()

    assert child.pid in found
    assert os.getpid() not in found


def test_the_postmaster_pid_is_the_first_line_of_postmaster_pid(tmp_path: Path) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "postmaster.pid").write_text("4242\n/data/pg\n1700000000\n5432\n")

    assert postmaster_pid(tmp_path) == 4242
    assert postmaster_pid(tmp_path / "none") is None


def test_cpu_between_snapshots_sums_per_part_and_counts_a_new_process_whole() -> None:
    before = {1: ("nats-server", 10.0), 2: ("postgres", 1.0), 3: ("postgres", 2.0)}
    after = {1: ("nats-server", 12.5), 2: ("postgres", 1.5), 3: ("postgres", 2.0),
             4: ("postgres", 0.25)}  # fmt: skip

    assert used_between(before, after) == {"nats-server": 2.5, "postgres": 0.75}


def test_per_intent_figures_leave_the_load_client_out_of_the_stack() -> None:
    full = CpuWindow(1_000, 2.0, {"nats-server": 0.5, "risk": 1.5, LOAD_CLIENT: 9.0})
    paced = CpuWindow(500, 5.0, {"nats-server": 1.0, "risk": 2.0, LOAD_CLIENT: 1.0})
    result = CpuResult(full=full, paced=paced, offered_per_s=100.0)

    assert full.ms_per_intent() == pytest.approx(2.0)
    assert full.ms_per_intent("risk") == pytest.approx(1.5)
    assert paced.ms_per_intent() == pytest.approx(6.0)
    assert result.ratio == pytest.approx(3.0)
    rows = {case: (value, verdict) for case, value, _, verdict in table(result)}
    assert rows["CPU per intent 100/s : full speed"] == ("3.00x", "MISS")
    assert rows["ms per intent by process, full speed"][0].endswith(f"{LOAD_CLIENT} 9.00")
