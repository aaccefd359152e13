"""The ledger agent: books every `order.filled.*` into Postgres and posts `ledger.posted.<ACCOUNT>`.

    order.filled.<SYM> -> book the fetched batch in ONE transaction -> ledger.posted.<ACCOUNT>

Settlement: a booked (or already booked) fill emits its `LedgerPosted` (the same event id on
every delivery, so the stream de-duplicates a re-publish after a crash); a fill that can never
be booked is dead-lettered; Postgres unavailable naks the whole batch for a retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from nats.aio.msg import Msg

from agents.base import Agent, Worker
from agents.ledger import store
from agents.ledger.errors import BookingError, ChainConflict, LedgerConfigError
from agents.ledger.metrics import observe_postings
from agents.ledger.migrations import migrate
from agents.settings import Settings
from bus import Delivery, Emit, Outcome, Rejected, Transient
from contracts import Identity, OrderFilled, parse, utc_now
from contracts import subjects as s
from contracts import topology as t

log = logging.getLogger("tradeops.ledger")

READY_TIMEOUT_S = 1.0
ACQUIRE_TIMEOUT_S = 5.0
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
    ChainConflict,
)
"""Failures that a retry can cure: Postgres down, restarting, a lost connection, a timeout."""


def decode_fill(msg: Msg) -> OrderFilled:
    return parse(OrderFilled, msg.data)


class Ledger(Agent):
    """Double-entry ledger on Postgres: journal, positions, cash, hash chain."""

    identity = Identity.LEDGER

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise LedgerConfigError("the ledger's Postgres pool is not open; call open() first")
        return self._pool

    async def open(self) -> None:
        """Connect to Postgres, apply migrations, seed the accounts' starting cash."""
        url = self.settings.database_url
        if not url:
            raise LedgerConfigError(
                "the ledger needs Postgres: set TRADEOPS_DATABASE_URL (or database_url in "
                "tradeops.toml), or run it under `tradeops up`, which starts an embedded one"
            )
        self._pool = await store.create_pool(url)
        async with self._pool.acquire() as conn:
            applied = await migrate(conn)
            seeded = await store.seed_accounts(conn, self.settings.accounts)
        if applied:
            log.info("ledger schema migrated to version %d", applied[-1])
        for posting in seeded:
            log.info(
                "opening posting for %s (journal_seq %d)", posting.account, posting.journal_seq
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except DATABASE_ERRORS:
                pool.terminate()

    def workers(self) -> Sequence[Worker]:
        return [Worker(t.consumer("ledger"), decode_fill, self.book)]

    async def book(self, items: Sequence[Delivery[OrderFilled]]) -> Sequence[Outcome]:
        """Book a fetched batch of fills in one transaction, in batch order."""
        booked_since = utc_now()
        try:
            async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                results = await store.book_fills(conn, [item.value for item in items])
        except DATABASE_ERRORS as exc:
            retry = Transient(f"postgres unavailable, batch not booked: {exc!r}")
            return [retry] * len(items)
        observe_postings([item.value for item in items], results, booked_since=booked_since)
        return [_outcome(result) for result in results]

    async def not_ready(self) -> list[str]:
        """Report Postgres as not ready when `SELECT 1` fails or is slow."""
        if self._pool is None:
            return ["postgres: not connected yet"]
        error: BaseException | None = None
        for _ in range(2):  # the first use after a restart may meet a stale connection
            try:
                async with asyncio.timeout(READY_TIMEOUT_S / 2):
                    await self._pool.fetchval("SELECT 1")
                return []
            except DATABASE_ERRORS as exc:
                error = exc
        return [f"postgres: {type(error).__name__}: {error}"]


def _outcome(result: store.BookResult) -> Outcome:
    if isinstance(result, BookingError):
        return Rejected(result.code, result.description)
    return [Emit(s.intent_event(s.LEDGER_POSTED, result.account, result.intent_id), result)]
