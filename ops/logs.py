"""The embedded stack's process logs: where each one is, its last lines, and following it.

`ops.stack` writes each supervised process's stdout and stderr to `<data dir>/logs/<name>.log`
(nats-server and each agent; `stack.log` is the supervisor itself under `up --detach`), and the
embedded Postgres (pgserver) writes `<data dir>/pg/log`. Following survives truncation and
rotation (the file shrinks or is rewritten, or another file takes its name): it then reads the
file from its start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contracts import AGENTS

BLOCK = 64 * 1024
FINGERPRINT = 64


def log_files(data_dir: Path) -> dict[str, Path]:
    """Every log the embedded stack writes, by name, in the order a reader expects them."""
    logs = data_dir / "logs"
    files = {
        "stack": logs / "stack.log",
        "nats-server": logs / "nats-server.log",
        "postgres": data_dir / "pg" / "log",
    }
    files.update({str(agent): logs / f"{agent}.log" for agent in AGENTS})
    return files


def tail(path: Path, lines: int) -> list[str]:
    """Return the last `lines` lines of `path` (read from its end, whatever its size)."""
    if lines <= 0:
        return []
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        data, pos = b"", end
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    text = data.decode("utf-8", "replace")
    return text.splitlines()[-lines:]


@dataclass
class Follower:
    """Yields the complete lines appended to one file since the last poll."""

    path: Path
    position: int = 0
    inode: int | None = None
    partial: bytes = b""
    seen: bytes = b""
    """The last bytes read: if they are no longer where they were, the file was rewritten."""

    @classmethod
    def at_end(cls, path: Path) -> Follower:
        """Follow from the current end of `path` (from its start once it appears)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return cls(path)
        with path.open("rb") as f:
            f.seek(max(st.st_size - FINGERPRINT, 0))
            seen = f.read(FINGERPRINT)
        return cls(path, st.st_size, st.st_ino, seen=seen)

    def poll(self) -> list[str]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        with self.path.open("rb") as f:
            f.seek(max(self.position - len(self.seen), 0))
            same = f.read(len(self.seen)) == self.seen
            replaced = st.st_ino != self.inode or st.st_size < self.position or not same
            if replaced:  # rotated, truncated or rewritten: read it from its start
                self.inode, self.position, self.partial, self.seen = st.st_ino, 0, b"", b""
            f.seek(self.position)
            data = f.read(max(st.st_size - self.position, 0))
        if not data:
            return []
        self.position += len(data)
        self.seen = (self.seen + data)[-FINGERPRINT:]
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]
