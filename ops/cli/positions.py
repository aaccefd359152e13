"""`tradeops positions`: what the ledger holds, read from Postgres."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer

from agents.ledger.queries import cash, positions
from agents.settings import Settings, load_settings
from ops.cli.errors import fail, one_line
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog, hint
from ops.client import stack_database_url

CONNECT_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 15.0
"""Connecting and reading both; a Postgres that accepts but never answers fails in this time."""

positions_app = typer.Typer()


def resolve_database_url(database_url: str | None, settings: Settings) -> str:
    """Return the explicit URL, else the configured one, else the running stack's (run file)."""
    url = database_url or stack_database_url(settings)
    if url:
        return url
    fail(
        f"no database to read: pass --database-url, set TRADEOPS_DATABASE_URL, or start the "
        f"stack with {hint('up', settings.data_dir)}",
        ExitCode.USAGE,
    )


def redact(url: str) -> str:
    """Return `url` without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def read_ledger(database_url: str, account: str | None) -> dict[str, Any]:
    """Return the positions and cash balances as JSON-ready data (or fail within seconds)."""
    async with asyncio.timeout(QUERY_TIMEOUT_S):
        conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
        try:
            held = await positions(conn, account)
            balances = await cash(conn, account)
        finally:
            await conn.close()
    return {
        "positions": [p.to_json() for p in held],
        "cash": [c.to_json() for c in balances],
    }


def render(doc: dict[str, Any]) -> str:
    """Return the positions and cash as aligned text tables."""
    header = ("ACCOUNT", "SYMBOL", "QUANTITY", "AVG COST", "COST BASIS", "REALIZED P&L", "CCY")
    rows = [header] + [
        (
            p["account"],
            p["symbol"],
            p["quantity"],
            p["avg_cost"],
            p["cost_basis"],
            p["realized_pnl"],
            p["currency"],
        )
        for p in doc["positions"]
    ]
    out = _table(rows) if doc["positions"] else ["no positions"]
    out.append("")
    cash_rows = [("ACCOUNT", "CURRENCY", "CASH")] + [
        (c["account"], c["currency"], c["balance"]) for c in doc["cash"]
    ]
    out += _table(cash_rows) if doc["cash"] else ["no cash balances"]
    return "\n".join(out)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


@positions_app.command("positions", epilog=exit_codes_epilog(0, 2, 3, 4, 5))
def positions_command(
    account: Annotated[
        str | None, typer.Option(help="Only this trading account, e.g. paper-1.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Read this Postgres instead of the running stack's.",
            envvar="TRADEOPS_DATABASE_URL",
        ),
    ] = None,
) -> None:
    """Show positions (quantity, average cost, realized P&L) and cash, from the ledger."""
    url = resolve_database_url(database_url, load_settings(data_dir))
    try:
        doc = asyncio.run(read_ledger(url, account))
    except asyncpg.UndefinedTableError:
        fail(
            f"{redact(url)} has no ledger tables yet: the ledger agent creates them when "
            f"it first starts ({hint('up', data_dir)})",
            ExitCode.NOT_FOUND,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        why = one_line(str(exc)) or f"no answer within {QUERY_TIMEOUT_S:g}s"
        fail(f"cannot read the ledger at {redact(url)}: {why}", ExitCode.UNREACHABLE)
    typer.echo(json.dumps(doc, indent=2) if as_json else render(doc))
