"""`tradeops intent list | watch`: the intents of a time window, and every event live."""

from __future__ import annotations

import asyncio
import json
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agents.settings import load_settings
from bus import Verifier
from contracts import Identity
from contracts.kinds import Outcome
from ops.audit.window import parse_time
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, hint
from ops.client import connected, stack_nats_url
from ops.intents.listing import list_intents
from ops.intents.live import LiveEvent, watch
from ops.intents.query import BadFilter, IntentListing, IntentQuery, IntentRow


class OutcomeFilter(StrEnum):
    """The outcomes `intent list --outcome` selects."""

    FILLED = Outcome.FILLED
    REJECTED = Outcome.REJECTED
    DEAD_LETTERED = Outcome.DEAD_LETTERED
    HANDED_OVER = Outcome.HANDED_OVER
    PENDING = Outcome.PENDING


def _row(r: IntentRow, data_dir: Path) -> list[str]:
    why = ", ".join(r.reasons)
    lines = [
        f"{r.entered_at:%Y-%m-%d %H:%M:%S}  {r.intent_id}  {r.symbol or '?':<8} "
        f"{r.side or '?':<4} {r.quantity or '?':>10}  {r.account or '?':<10} "
        f"{r.outcome:<13} {why}".rstrip()
    ]
    if r.terminals > 1:
        show = hint(f"intent show {r.intent_id}", data_dir)
        lines.append(f"    !! {r.terminals} terminal outcomes: {show}")
    lines += [f"    !! untrusted {e.kind} ({e.stream} #{e.seq}): {e.problem}" for e in r.untrusted]
    return lines


def render_listing(listing: IntentListing, data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """`intent list`: one line per intent, newest first; untrusted events flagged beneath."""
    q = listing.query
    since = f"{q.since:%Y-%m-%d %H:%M:%S}Z"
    if not listing.rows:
        return f"no intents entered since {since} that match"
    head = (
        f"{'ENTERED (UTC)':<19}  {'INTENT':<36}  {'SYMBOL':<8} {'SIDE':<4} {'QUANTITY':>10}  "
        f"{'ACCOUNT':<10} {'OUTCOME':<13} WHY"
    )
    lines = [head, *(line for r in listing.rows for line in _row(r, data_dir))]
    n = len(listing.rows)
    if n < q.limit:
        lines.append(f"{n} intent{'s' if n != 1 else ''} entered since {since}")
    else:
        lines.append(
            f"the newest {n} since {since}; more may match: raise --limit or narrow --since"
        )
    return "\n".join(lines)


def intent_list(
    since: Annotated[
        str,
        typer.Option(help="From this time: ISO 8601 (2025-06-01T12:00Z) or an age (30m, 1h, 7d)."),
    ] = "1h",
    outcome: Annotated[
        OutcomeFilter | None, typer.Option(help="Only intents that ended so (or pending).")
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Intents that entered since a time, newest first, with their outcome.

    An intent enters when the ingestor accepts it, or refuses its submission (a dead letter).
    Every event shown is signature-checked; untrusted ones are flagged and decide nothing."""
    try:
        query = IntentQuery(
            since=parse_time(since),
            outcome=Outcome(outcome) if outcome else None,
            symbol=symbol.upper() if symbol else None,
            account=account,
            limit=limit,
        )
    except (ValueError, BadFilter) as exc:
        fail(str(exc), ExitCode.USAGE)
    settings = load_settings(data_dir)

    async def go() -> IntentListing:
        async with connected(settings, Identity.OPS) as nc:
            return await list_intents(nc, query, Verifier.from_dir(settings.certs_dir))

    listing = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(listing.to_json(), indent=2))
    else:
        typer.echo(render_listing(listing, data_dir))


def render_live(e: LiveEvent) -> str:
    """`intent watch`: one line per event."""
    token = e.symbol or e.account or "-"
    mark = f"  !! {e.problem}" if e.problem else ""
    return (
        f"{e.received_at:%H:%M:%S.%f}"[:-3] + f"  {e.kind:<19} {token:<8} "
        f"{e.intent_id or '-':<36}  by {e.producer:<9} [{e.signature}]{mark}"
    )


def intent_watch(
    symbol: Annotated[
        str | None, typer.Option(help="Only this symbol (and its intents' postings).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Print each intent event as it is published, with its producer and signature.

    One line per event (time received, kind, symbol, intent id, producer, signature status)
    until Ctrl-C or SIGTERM."""
    settings = load_settings(data_dir)
    verifier = Verifier.from_dir(settings.certs_dir)
    wanted = symbol.upper() if symbol else None

    def show(event: LiveEvent) -> None:
        typer.echo(json.dumps(event.to_json()) if as_json else render_live(event))

    async def go() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with connected(settings, Identity.OPS) as nc:
            typer.echo(f"watching intent events on {stack_nats_url(settings)}", err=True)
            await watch(nc, verifier, show, stop, symbol=wanted)
            return stop.is_set()

    try:
        stopped = asyncio.run(go())
    except BadFilter as exc:
        fail(str(exc), ExitCode.USAGE)
    if not stopped:
        fail("lost the connection to NATS", ExitCode.UNREACHABLE)
