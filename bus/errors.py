"""What a handler raises to tell the runtime how to settle a message."""

from __future__ import annotations


class BusError(Exception):
    """Root of bus errors."""

    code = "bus_error"


class Transient(BusError):
    """A temporary failure (a dependency is down): nak with an increasing delay and retry."""

    code = "transient"


class Rejected(BusError):
    """The message can never be processed: dead-letter it with `code` and terminate it."""

    def __init__(self, code: str, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"{code}: {description}")


class PermissionDenied(BusError):
    """The server refused an operation for this identity."""

    code = "permission_denied"
