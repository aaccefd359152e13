"""A process's resident memory from `/proc/<pid>/status`: now (`VmRSS`) and its peak (`VmHWM`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

KIB_PER_MIB: Final = 1024


@dataclass(frozen=True)
class ProcMemory:
    """A process's resident memory as the kernel reports it in `/proc/<pid>/status`."""

    rss_kib: int
    """`VmRSS`: resident now."""
    hwm_kib: int
    """`VmHWM`: the most it was ever resident (peak RSS)."""

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / KIB_PER_MIB

    @property
    def hwm_mib(self) -> float:
        return self.hwm_kib / KIB_PER_MIB


def parse_status(text: str) -> ProcMemory:
    """Return `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text (the kernel writes them in kB,
    which are KiB); ValueError when either is missing (a kernel thread or a zombie has none)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            amount, unit = rest.split()
            if unit != "kB":
                raise ValueError(f"{key} in {unit!r}, expected kB")
            found[key] = int(amount)
    missing = {"VmRSS", "VmHWM"} - found.keys()
    if missing:
        raise ValueError(f"no {' or '.join(sorted(missing))} in the process status")
    return ProcMemory(rss_kib=found["VmRSS"], hwm_kib=found["VmHWM"])


def read_memory(pid: int) -> ProcMemory:
    """Return the resident memory of process `pid` now."""
    return parse_status(Path(f"/proc/{pid}/status").read_text())
