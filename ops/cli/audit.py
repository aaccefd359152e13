"""`tradeops audit trail | verify`: replay the streams and check what they say."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichBar

from agents.settings import load_settings
from bus import Verifier
from contracts import Identity
from ops.audit.report import AuditReport
from ops.audit.signatures import Parallelism
from ops.audit.trail import IntentTrail, canonical_intent_id, find_trail
from ops.audit.verify import AuditOptions, Progress, run_audit
from ops.audit.window import ReplayWindow, parse_time
from ops.cli.errors import fail, one_line
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog
from ops.cli.positions import redact, resolve_database_url
from ops.cli.render import render_audit
from ops.client import connected

CACHE_FILE = "verified-signatures.bin"

audit_app = typer.Typer(
    help="Replay the streams: an intent's trail; signatures, chains and the ledger.",
    no_args_is_help=True,
)


class BarProgress(Progress):
    """A rich progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, console: Console) -> None:
        self.bar = RichBar(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None

    def start(self, total: int | None) -> None:
        self.bar.start()
        self.task = self.bar.add_task("replaying", total=total, rate="")

    def advance(self, stream: str, count: int) -> None:
        if self.task is None:
            return
        self.bar.update(self.task, advance=count, description=f"replaying {stream}")
        speed = self.bar.tasks[self.task].speed
        if speed:
            self.bar.update(self.task, rate=f"{speed:,.0f} events/s")

    def stop(self) -> None:
        self.bar.stop()


@audit_app.command("trail", epilog=exit_codes_epilog(0, 1, 2, 3, 4, 5))
def trail(
    intent_id: Annotated[str, typer.Argument(help="The intent's id (UUID).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Every event of one intent in order: producer, signature, time since submission.

    Exits 3 when nothing is stored for the id, 1 when its chain has problems."""
    wanted = canonical_intent_id(intent_id)
    settings = load_settings(data_dir)
    verifier = Verifier.from_dir(settings.certs_dir)

    async def go() -> IntentTrail:
        async with connected(settings, Identity.OPS) as nc:
            return await find_trail(nc, wanted, verifier)

    found = asyncio.run(go())
    typer.echo(
        json.dumps(found.to_json(), indent=2, default=str) if as_json else render_audit(found)
    )
    if not found.entries:
        raise typer.Exit(ExitCode.NOT_FOUND)
    if found.problems:
        raise typer.Exit(ExitCode.PROBLEMS)


@audit_app.command("verify", epilog=exit_codes_epilog(0, 1, 2, 4, 5))
def verify(
    since: Annotated[
        str | None,
        typer.Option(help="Replay from this time (ISO 8601, or an age such as 24h)."),
    ] = None,
    from_seq: Annotated[
        int | None,
        typer.Option(
            "--from-seq", help="Replay SUBMISSIONS from this sequence (the rest from its time)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Count warnings (pending intents) as errors.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Check this Postgres instead of the running stack's.",
            envvar="TRADEOPS_DATABASE_URL",
        ),
    ] = None,
    no_postgres: Annotated[
        bool, typer.Option("--no-postgres", help="Check the streams only.")
    ] = False,
    parallel: Annotated[
        Parallelism, typer.Option(help="Where signatures are verified.")
    ] = Parallelism.PROCESSES,
    workers: Annotated[
        int | None, typer.Option(help="Verification workers (default: one per CPU).")
    ] = None,
    cache: Annotated[
        bool,
        typer.Option(
            help="Remember verified signatures (keyed by the ops key) for the next audit."
        ),
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
) -> None:
    """Replay the streams: every signature, every intent's chain, the ledger and balances.

    Exits 1 when anything is wrong, naming each discrepancy (stream, sequence, intent).
    """
    try:
        window = ReplayWindow(since=parse_time(since) if since else None, from_seq=from_seq or 1)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    settings = load_settings(data_dir)
    url = None if no_postgres else resolve_database_url(database_url, settings)
    options = AuditOptions(
        window=window,
        strict=strict,
        database_url=url,
        parallelism=parallel,
        workers=workers,
        cache_path=settings.data_dir / "audit" / CACHE_FILE if cache else None,
        price_collar_pct=settings.limits.price_collar_pct,
    )
    console = Console(stderr=True)
    bar = BarProgress(console) if progress and console.is_terminal else None

    async def go() -> AuditReport:
        async with connected(settings, Identity.OPS) as nc:
            return await run_audit(nc, settings.certs_dir, options, bar)

    try:
        report = asyncio.run(go())
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError) as exc:
        where = f" (Postgres {redact(url)})" if url else ""
        fail(
            f"audit could not run{where}: {one_line(str(exc)) or type(exc).__name__}",
            ExitCode.UNREACHABLE,
        )
    finally:
        if bar is not None:
            bar.stop()
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    if not report.ok:
        raise typer.Exit(ExitCode.PROBLEMS)
