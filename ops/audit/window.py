"""Where a replay starts: from the beginning, a time, or a stream sequence; and reading times."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import topology as t

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """Return the UTC time `text` names: ISO 8601 (`2025-06-01T12:00Z`, a date) or an age
    (`90s`, `30m`, `12h`, `7d`, `2w` = that long ago). A time without a zone is UTC."""
    value = text.strip()
    match = _RELATIVE.fullmatch(value)
    if match:
        seconds = float(match[1]) * _UNIT_S[match[2]]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read the time {text!r}: give ISO 8601 such as 2025-06-01T12:00:00Z, "
            "a date such as 2025-06-01, or an age such as 90s, 30m, 12h, 7d, 2w"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class ReplayWindow:
    """The part of the streams a replay reads, closed under cause and effect.

    Everything; or everything stored since a time; or SUBMISSIONS from one sequence on and the other
    streams from the time that message was stored. (A sequence of one stream says nothing about
    another's: the same number on RISK may be an approval of an intent submitted long before.)
    Every event of an intent submitted inside the window is then inside it too.
    """

    since: datetime | None = None
    from_seq: int = 1

    def __post_init__(self) -> None:
        if self.since is not None and self.from_seq > 1:
            raise ValueError("give either a start time or a start sequence, not both")
        if self.from_seq < 1:
            raise ValueError(f"stream sequences start at 1, got {self.from_seq}")

    @property
    def full(self) -> bool:
        """True when every stream is read from its first message."""
        return self.since is None and self.from_seq <= 1

    def read_args(self, stream: str, origin_time: datetime | None = None) -> dict[str, Any]:
        """Return the `read_stream` keyword arguments for `stream`.

        `origin_time` is when SUBMISSIONS #`from_seq` was stored (None when it does not exist yet).
        """
        if self.since is not None:
            return {"start_time": self.since}
        if self.from_seq <= 1 or stream == t.SUBMISSIONS:
            return {"start_seq": self.from_seq}
        return {"start_time": origin_time or datetime.now(UTC)}

    def describe(self) -> str:
        if self.since is not None:
            return f"since {self.since.isoformat()}"
        if self.from_seq > 1:
            return f"from SUBMISSIONS #{self.from_seq} (the other streams from its time)"
        return "from the start"
