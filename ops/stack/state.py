"""The run file: where the embedded stack of a data dir is, and who runs it.

`<data_dir>/run/stack.json` is written by the running stack only (`EmbeddedStack`, every half
second and at each change of state, atomically: a temporary file renamed over it) and read by
every command that looks for the stack (status, the connect helper, positions, certs revoke,
up and down). `<data_dir>/run/stack.pid` holds the supervising process's pid while it runs.
This module is the one reader and writer of both: a run file that is not what the writer writes
is `CorruptRunFile`, which names the file and what to do.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

StackPhase = Literal["starting", "running", "stopping", "stopped"]


class CorruptRunFile(Exception):
    """The run file exists but is not a run file; the message says which file and what to do."""


class _RunModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExitRecord(_RunModel):
    """How a component last ended."""

    code: int | None
    """Its exit status (negative: killed by that signal)."""
    at: datetime
    """When it ended."""


class ComponentState(_RunModel):
    """One supervised process of the stack."""

    pid: int | None = None
    """Its pid while it runs."""
    state: str
    """`running`, `restarting`, `exited` or `stopped`."""
    restarts: int = 0
    """How often the supervisor restarted it."""
    last_exit: ExitRecord | None = None
    """Its last exit, if it ever exited."""
    health_url: str | None = None
    """Its health endpoint (`/healthz`, `/readyz` below it)."""


class NatsEndpoints(_RunModel):
    """Where the stack's nats-server listens."""

    url: str
    """Client URL, e.g. `tls://127.0.0.1:4222`."""
    monitor_url: str
    """Monitoring URL, e.g. `http://127.0.0.1:8222`."""


class DatabaseEndpoint(_RunModel):
    """The stack's Postgres."""

    url: str | None
    """Connection URL (None until the embedded one runs)."""
    embedded: bool
    """Whether the stack started it (pgserver) or was given it."""


class StackState(_RunModel):
    """The whole run file."""

    pid: int
    """The supervising process (`tradeops up`, or the demo)."""
    state: StackPhase
    """Where the stack is in its life."""
    updated_at: datetime
    """When the stack last wrote the file (every half second while it runs)."""
    data_dir: Path
    """The stack's data dir, resolved."""
    nats: NatsEndpoints
    """Where its nats-server listens."""
    database: DatabaseEndpoint
    """Its Postgres."""
    components: dict[str, ComponentState] = {}
    """Each supervised process by name (nats-server and every agent)."""


def run_dir(data_dir: Path) -> Path:
    return data_dir / "run"


def state_file(data_dir: Path) -> Path:
    return run_dir(data_dir) / "stack.json"


def pid_file(data_dir: Path) -> Path:
    return run_dir(data_dir) / "stack.pid"


def read_state(data_dir: Path) -> StackState | None:
    """Return the run file of `data_dir`, or None when there is none (no stack ever ran there).

    Raises `CorruptRunFile` when the file exists but cannot be read as a run file."""
    path = state_file(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptRunFile(f"cannot read the run file {path}: {exc.strerror}") from None
    try:
        return StackState.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise CorruptRunFile(
            f"the run file {path} is corrupt ({where}: {first['msg']}); if no stack runs in "
            f"{data_dir}, delete it (`tradeops up --data-dir {data_dir}` writes a new one)"
        ) from None


def write_state(data_dir: Path, state: StackState) -> None:
    """Replace the run file atomically (readers see the old file or the new one, never half)."""
    path = state_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.model_dump(mode="json"), indent=2))
    tmp.replace(path)


def clear_state(data_dir: Path) -> None:
    state_file(data_dir).unlink(missing_ok=True)


def read_pid(data_dir: Path) -> int | None:
    """The pid of the process that runs the stack of `data_dir`, if the pid file names one."""
    try:
        text = pid_file(data_dir).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 2**22 else None


def write_pid(data_dir: Path, pid: int | None = None) -> None:
    path = pid_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid() if pid is None else pid))


def clear_pid(data_dir: Path) -> None:
    pid_file(data_dir).unlink(missing_ok=True)


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(data_dir: Path) -> int | None:
    """The pid of the live process running the stack of `data_dir`, else None."""
    pid = read_pid(data_dir)
    return pid if pid_alive(pid) else None
