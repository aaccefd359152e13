"""The ledger: a hash-chained double-entry journal of fills, positions and cash on Postgres."""

from agents.ledger.agent import Ledger
from agents.ledger.booking import AccountKind, Booking, Position, book_fill, ledger_account
from agents.ledger.chain import GENESIS_HASH, ChainEntry, verify_chain, verify_entries
from agents.ledger.errors import BookingError, LedgerConfigError, LedgerError
from agents.ledger.migrations import migrate
from agents.ledger.queries import (
    CashBalance,
    cash,
    positions,
    recompute_from_fills,
    verify_balances,
)

__all__ = [
    "GENESIS_HASH",
    "AccountKind",
    "Booking",
    "BookingError",
    "CashBalance",
    "ChainEntry",
    "Ledger",
    "LedgerConfigError",
    "LedgerError",
    "Position",
    "book_fill",
    "cash",
    "ledger_account",
    "migrate",
    "positions",
    "recompute_from_fills",
    "verify_balances",
    "verify_chain",
    "verify_entries",
]
