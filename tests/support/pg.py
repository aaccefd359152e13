"""Postgres fixtures: an embedded server (the `pgserver` wheel) per session, a database per test."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest


def with_database(url: str, name: str) -> str:
    """Return `url` pointing at database `name` (the socket and credentials unchanged)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Any]:
    """Start a PostgreSQL 16 server (unix socket only) in a new directory; stop and remove it.

    The directory is NOT under pytest's tmp_path: run as root, pgserver runs postgres as the
    user `pgserver`, and every pytest session resets `/tmp/pytest-of-<user>` to mode 0700,
    which would lock a running server out of its own data directory.
    """
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset, /tmp used instead
        warnings.simplefilter("ignore")
        from pgserver import get_server  # type: ignore[attr-defined]  # noqa: PLC0415

    pgdata = Path(tempfile.mkdtemp(prefix="tradeops-pg-"))
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL 16 server for the session; yields its URL."""
    with embedded_postgres() as server:
        yield str(server.get_uri())


@pytest.fixture
async def database_url(pg_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(pg_url, name)
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
