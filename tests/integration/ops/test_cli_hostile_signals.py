"""Stopping what `tradeops` started: SIGTERM on `demo` and SIGHUP on a foreground `up` leave no
process behind (the whole tree recorded before the signal) and no temporary data dir; with NATS
down, `provision --timeout 5` gives up within 10 s."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from ops.cli.options import ExitCode
from ops.stack.scratch import write_scratch_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRADEOPS = str(Path(sys.executable).parent / "tradeops")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TRADEOPS, *args], env=CLEAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip


def _tree_once_nats_runs(proc: subprocess.Popen[bytes], timeout_s: float) -> list[psutil.Process]:
    """The process and all its descendants, once a nats-server is among them."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        children = parent.children(recursive=True)
        if any("nats-server" in c.name() for c in children if c.is_running()):
            time.sleep(2.0)  # let Postgres and the agents start too: more to leave behind
            return [parent, *parent.children(recursive=True)]
        time.sleep(0.2)
    pytest.fail(f"no nats-server under pid {proc.pid} within {timeout_s}s")


def _gone(tree: list[psutil.Process], timeout_s: float = 30.0) -> list[str]:
    """Those of `tree` still alive after `timeout_s` (zombies count as gone)."""
    _, alive = psutil.wait_procs(tree, timeout=timeout_s)
    left = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in left:  # do not leave them to the next test either
        p.kill()
    return [f"{p.pid} {p.name()}" for p in left]


def _stop(proc: subprocess.Popen[bytes], signum: signal.Signals, tree: list[psutil.Process]) -> str:
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        left = _gone(tree)
    assert not left, f"still running after {signum.name}: {left}"
    return err.decode()


def _demo_dir(tree: list[psutil.Process]) -> Path:
    for p in tree:
        for word in p.cmdline():
            if "tradeops-demo-" in word:
                head, _, rest = word.partition("tradeops-demo-")
                return Path(head + "tradeops-demo-" + rest.split("/")[0])
    pytest.fail("no process of the demo names its temporary data dir")


def test_sigterm_on_demo_stops_every_process_and_removes_its_temporary_dir() -> None:
    proc = _start("demo")
    tree = _tree_once_nats_runs(proc, 180)
    base = _demo_dir(tree)
    assert base.exists()

    err = _stop(proc, signal.SIGTERM, tree)

    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: stopped by SIGTERM")
    assert not base.exists()


def test_sighup_on_a_foreground_up_stops_every_process_and_clears_the_run_file() -> None:
    base = Path(tempfile.mkdtemp(prefix="tradeops-up-"))
    data = base / "stack"
    write_scratch_config(data, feed_interval_ms=100)
    try:
        proc = _start("up", "--data-dir", str(data))
        tree = _tree_once_nats_runs(proc, 180)

        err = _stop(proc, signal.SIGHUP, tree)

        assert proc.returncode in (0, 128 + signal.SIGHUP), err
        assert "Traceback" not in err
        assert "stopped by SIGHUP" in err
        status = subprocess.run(
            [TRADEOPS, "status", "--data-dir", str(data)], env=CLEAN_ENV, capture_output=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert status.returncode == ExitCode.NOT_FOUND
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_provision_with_nats_down_gives_up_within_its_timeout() -> None:
    base = Path(tempfile.mkdtemp(prefix="tradeops-prov-"))
    try:
        write_scratch_config(base / "d")  # ports free a moment ago: nothing listens there
        init = [TRADEOPS, "certs", "init", "--data-dir", str(base / "d")]
        assert subprocess.run(init, env=CLEAN_ENV, capture_output=True, check=False).returncode == 0
        started = time.monotonic()
        done = subprocess.run(
            [TRADEOPS, "provision", "--timeout", "5", "--data-dir", str(base / "d")],
            env=CLEAN_ENV, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        took_s = time.monotonic() - started
    finally:
        shutil.rmtree(base, ignore_errors=True)

    assert done.returncode == ExitCode.UNREACHABLE
    assert took_s < 10.0
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "within 5s" in lines[0]
