"""The ledger's errors: one root, each with a code and a description."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of the ledger's errors."""

    code = "ledger_error"

    def __init__(self, description: str) -> None:
        self.description = description
        super().__init__(f"{self.code}: {description}")


class BookingError(LedgerError):
    """A fill that can never be booked as it is (dead-lettered for an operator)."""

    def __init__(self, code: str, description: str) -> None:
        self.code = code
        super().__init__(description)


class ChainConflict(LedgerError):
    """A posting was appended to the journal without the chain lock; the batch is retried."""

    code = "chain_conflict"


class LedgerConfigError(LedgerError):
    """The ledger's settings cannot work (no database URL, an unusable account name)."""

    code = "ledger_config"
