"""Versioned schema migrations: `migrations/NNNN_name.sql`, each applied once, in order.

`schema_migrations(version, name, applied_at)` records what was applied. Each migration runs
in its own transaction holding an advisory lock, and re-checks the table under that lock, so
replicas starting together apply every migration exactly once; a failed migration rolls back
whole and is retried at the next start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agents.ledger.errors import LedgerConfigError

MIGRATION_LOCK_KEY = 0x74726F5F6D696701
"""Advisory lock id held while migrating (`tro_mig` + 1)."""
_FILE_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema version."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Return the packaged migrations in version order."""
    found: list[Migration] = []
    for entry in resources.files("agents.ledger").joinpath("migrations").iterdir():
        match = _FILE_RE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise LedgerConfigError(
            f"ledger migrations must be numbered 0001, 0002, ... without gaps; found {versions}"
        )
    return found


async def migrate(conn: Any, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the migrations not applied yet; return the versions this call applied."""
    pending = load_migrations() if migrations is None else migrations
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
    applied: list[int] = []
    for migration in pending:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            done = await conn.fetchval(
                "SELECT true FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def schema_version(conn: Any) -> int:
    """Return the highest applied version (0 for an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
