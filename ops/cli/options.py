"""Options shared by the `tradeops` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="The stack's directory (certificates, stores, logs).",
        envvar="TRADEOPS_DATA_DIR",
    ),
]
DEFAULT_DATA_DIR = Path(".tradeops")
