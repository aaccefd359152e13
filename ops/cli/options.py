"""Options shared by the `tradeops` commands, and the exit codes every command documents.

An exit code says what kind of thing went wrong, so a script can tell "fix the command line" from
"start the stack" from "the audit found something"; the one line on stderr says which and what to
do. `tradeops --help` lists them all; each command's help names the ones it uses.
"""

from __future__ import annotations

import shlex
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer

DATA_DIR_KEY = "tradeops.data_dir"
"""Where `--data-dir` is kept in the click context's shared `meta`, for the error hints."""


def _remember_data_dir(ctx: typer.Context, value: Path) -> Path:
    ctx.meta[DATA_DIR_KEY] = value
    return value


DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="The stack's directory (certificates, stores, logs).",
        envvar="TRADEOPS_DATA_DIR",
        callback=_remember_data_dir,
    ),
]
DEFAULT_DATA_DIR = Path(".tradeops")

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class ExitCode(IntEnum):
    """What a `tradeops` exit status means (128 + N: stopped by signal N)."""

    OK = 0
    PROBLEMS = 1
    """The command ran and found problems (an audit discrepancy), or could not do what was asked."""
    USAGE = 2
    """A bad argument or input: nothing was sent (click's own usage errors exit 2 too)."""
    NOT_FOUND = 3
    """Nothing by that id (intent, dead letter; or one not retriable again), or no stack running
    in the data dir."""
    UNREACHABLE = 4
    """NATS, JetStream or Postgres cannot be reached, or did not answer (or get ready) in time."""
    SETUP = 5
    """The data dir cannot be used as it is: certificates or keys missing or unreadable, a corrupt
    run file or settings file, a port its settings name already in use."""
    FILLED = 0
    """`intent submit --wait`: the intent was filled and posted."""
    REJECTED = 10
    """`intent submit --wait`: rejected by the risk gate or the executor."""
    DEAD_LETTERED = 11
    """`intent submit --wait`: refused by an agent as invalid (see `tradeops dlq list`)."""
    TIMED_OUT = 12
    """`intent submit --wait`: no terminal outcome within --timeout (still pending)."""
    HANDED_OVER = 13
    """`intent submit --wait`: its dead letter was retried as another message."""
    INTERNAL = 70
    """A bug in tradeops: run again with TRADEOPS_DEBUG=1 for the traceback and report it."""


EXIT_CODE_DOCS: tuple[tuple[int, str, str], ...] = (
    (0, "OK", "done (intent submit --wait: filled)"),
    (1, "PROBLEMS", "found problems, or could not do what was asked"),
    (2, "USAGE", "bad argument or input; nothing was sent"),
    (3, "NOT_FOUND", "no such intent or dead letter, or no stack running"),
    (4, "UNREACHABLE", "NATS, JetStream or Postgres down, or too slow to answer"),
    (5, "SETUP", "data dir unusable: certs, run file, settings, a port"),
    (10, "REJECTED", "intent submit --wait: rejected"),
    (11, "DEAD_LETTERED", "intent submit --wait: dead-lettered as invalid"),
    (12, "TIMED_OUT", "intent submit --wait: no outcome within --timeout"),
    (13, "HANDED_OVER", "intent submit --wait: its dead letter was retried"),
    (70, "INTERNAL", "a bug: TRADEOPS_DEBUG=1 shows the traceback"),
    (128, "+N", "stopped by signal N (130 Ctrl-C, 143 TERM, 129 HUP)"),
)
"""Every documented exit status, as `tradeops --help` lists it."""

WAIT_EXIT: dict[str, ExitCode] = {
    "filled": ExitCode.FILLED,
    "rejected": ExitCode.REJECTED,
    "dead_lettered": ExitCode.DEAD_LETTERED,
    "handed_over": ExitCode.HANDED_OVER,
}
"""`intent submit --wait`: the exit code of each terminal outcome (`contracts.kinds.Outcome`'s
values, spelled out so that importing this module imports no contracts; a unit test checks
them); anything else: TIMED_OUT."""


def exit_codes_epilog(*codes: int) -> str:
    """The exit-code table for a help page: every code, or only `codes`."""
    rows = [row for row in EXIT_CODE_DOCS if not codes or row[0] in codes]
    table = "\n".join(f"  {code:>3}  {name:<14} {meaning}" for code, name, meaning in rows)
    return f"\b\nExit codes:\n{table}"


def documented_exit_codes() -> frozenset[int]:
    """Every exit status a command may end with (signals excluded)."""
    return frozenset(code for code, _, _ in EXIT_CODE_DOCS if code < 128)


def hint(command: str, data_dir: Path) -> str:
    """A command to run next, for the data dir the user gave: `tradeops status --data-dir X`."""
    return f"`tradeops {command} --data-dir {shlex.quote(str(data_dir))}`"
