"""Supervise child processes: start, restart with backoff when they die, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ops.stack.state import ComponentState, ExitRecord

log = logging.getLogger("tradeops.supervisor")

MAX_BACKOFF_S = 10.0


@dataclass
class Supervised:
    """One child process and its restart history."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    last_exit: ExitRecord | None = None
    state: str = "stopped"
    _stopping: bool = False
    _watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**os.environ, **self.env},
            )
        self.state = "running"
        log.info("started %s (pid %d)", self.name, self.proc.pid)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        failures = 0
        while not self._stopping:
            assert self.proc is not None
            started = asyncio.get_running_loop().time()
            code = await self.proc.wait()
            if self._stopping:
                break
            self.last_exit = ExitRecord(code=code, at=datetime.now(UTC))
            ran_s = asyncio.get_running_loop().time() - started
            failures = 0 if ran_s > 30 else failures + 1
            delay = min(0.5 * 2 ** max(failures - 1, 0), MAX_BACKOFF_S)
            self.state = "restarting"
            log.warning(
                "%s exited with %s after %.1fs; restarting in %.1fs", self.name, code, ran_s, delay
            )
            await asyncio.sleep(delay)
            if self._stopping:
                break
            self.restarts += 1
            await self.start()

    async def stop(self, timeout_s: float = 20.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.error("%s ignored SIGTERM for %.0fs; killing it", self.name, timeout_s)
                proc.kill()
                await proc.wait()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        self.state = "stopped"

    def describe(self) -> ComponentState:
        alive = self.proc is not None and self.proc.returncode is None
        return ComponentState(
            pid=self.proc.pid if self.proc and alive else None,
            state=self.state if alive or self.state != "running" else "exited",
            restarts=self.restarts,
            last_exit=self.last_exit,
            health_url=self.health_url,
        )
