"""`tradeops positions`: what the ledger holds, read from Postgres."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer

from agents.ledger.queries import cash, positions
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.stack.embedded import state_file

CONNECT_TIMEOUT_S = 5.0


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """Return the explicit URL, else the running stack's (`<data_dir>/run/stack.json`)."""
    if database_url:
        return database_url
    try:
        doc: dict[str, Any] = json.loads(state_file(data_dir).read_text())
        url = doc.get("database", {}).get("url")
    except (OSError, ValueError, AttributeError):
        url = None
    if isinstance(url, str) and url:
        return url
    typer.echo(
        f"no database to read: pass --database-url, set TRADEOPS_DATABASE_URL, or start the "
        f"stack with `tradeops up --data-dir {data_dir}`",
        err=True,
    )
    raise typer.Exit(2)


def redact(url: str) -> str:
    """Return `url` without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def read_ledger(database_url: str, account: str | None) -> dict[str, Any]:
    """Return the positions and cash balances as JSON-ready data."""
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


def register(app: typer.Typer) -> None:
    """Add the ledger commands to `app`."""

    @app.command("positions")
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
        url = resolve_database_url(database_url, data_dir)
        try:
            doc = asyncio.run(read_ledger(url, account))
        except asyncpg.UndefinedTableError:
            typer.echo(
                f"{redact(url)} has no ledger tables yet: the ledger agent creates them when "
                "it first starts (`tradeops up`)",
                err=True,
            )
            raise typer.Exit(1) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            typer.echo(f"cannot read the ledger at {redact(url)}: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(doc, indent=2) if as_json else render(doc))
