"""Validation failures with field-level reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldReason:
    """One thing wrong with a message."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ContractError(ValueError):
    """Root of contract errors."""

    code = "contract_error"


class InvalidMessage(ContractError):
    """A payload that is not a valid message; `reasons` name each failing field."""

    code = "invalid_payload"

    def __init__(self, model: str, reasons: tuple[FieldReason, ...]) -> None:
        self.model = model
        self.reasons = reasons
        super().__init__(f"invalid {model}: " + "; ".join(str(r) for r in reasons))


def parse(model: type[M], raw: bytes, *, max_bytes: int | None = None) -> M:
    """Validate `raw` JSON into `model`, or raise InvalidMessage naming every failing field."""
    if max_bytes is not None and len(raw) > max_bytes:
        reason = FieldReason("payload", f"must be at most {max_bytes} bytes, got {len(raw)}")
        raise InvalidMessage(model.__name__, (reason,))
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        reasons = tuple(
            FieldReason(".".join(str(p) for p in err["loc"]) or "payload", err["msg"])
            for err in exc.errors(include_url=False)
        )
        raise InvalidMessage(model.__name__, reasons) from None
