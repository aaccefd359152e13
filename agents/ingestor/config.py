"""The ingestor's settings section: `[feed]` (the market feed it runs)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from agents.common.config import Section


class FeedMode(StrEnum):
    SYNTHETIC = "synthetic"
    CSV = "csv"


class Feed(Section):
    mode: FeedMode = FeedMode.SYNTHETIC
    seed: int = 7
    interval_ms: int = 250
    csv_path: Path | None = None
    speed: float = 1.0
    """CSV replay: 1 = original speed, 10 = ten times faster, 0 = as fast as possible."""
