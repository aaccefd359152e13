"""The e2e benchmark's CPU probe reads real processes' CPU time from /proc."""

from __future__ import annotations

import os
import subprocess
import time

from ops.bench.e2e import CpuProbe, cpu_seconds


def _spin(cpu_seconds_: float) -> None:
    """Compute until this process has used `cpu_seconds_` of CPU (however loaded the machine)."""
    end = time.process_time() + cpu_seconds_
    while time.process_time() < end:
        pass


def test_cpu_seconds_of_this_process_grows_while_it_computes() -> None:
    before = cpu_seconds(os.getpid())
    _spin(0.3)
    assert cpu_seconds(os.getpid()) - before >= 0.2


def test_cpu_seconds_of_a_process_that_does_not_exist_is_zero() -> None:
    assert cpu_seconds(2**22 + 1) == 0.0  # above the kernel's pid_max default


def test_probe_reports_a_busy_process_near_one_core_and_an_idle_one_near_zero() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        probe = CpuProbe({"busy": [os.getpid()], "idle": [sleeper.pid]})
        probe.start()
        _spin(0.5)
        probe.stop()
    finally:
        sleeper.kill()
        sleeper.wait()
    # its share of one core: near 1 on an idle machine, lower when others compete for the cores
    assert probe.share["busy"] > 0.25
    assert probe.share["idle"] < 0.05
