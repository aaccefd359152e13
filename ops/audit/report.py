"""What an audit found: named discrepancies, warnings, and the counts of what was checked."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Check(StrEnum):
    """Which check found a problem."""

    SIGNATURE = "signature"
    PROVENANCE = "provenance"
    CHAIN = "chain"
    TERMINAL = "terminal"
    LEDGER_CHAIN = "ledger_chain"
    BALANCES = "balances"
    REPLAY = "replay"
    HALT = "halt"
    MARKET = "market"


@dataclass(frozen=True)
class Finding:
    """One problem, located: the stream and sequence (or `postgres`), the intent, and what."""

    check: Check
    what: str
    stream: str | None = None
    seq: int | None = None
    intent_id: str | None = None

    @property
    def where(self) -> str:
        place = self.stream or "-"
        if self.seq is not None:
            place += f" #{self.seq}"
        return place

    def line(self) -> str:
        intent = f" intent {self.intent_id}" if self.intent_id else ""
        return f"[{self.check}] {self.where}{intent}: {self.what}"

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}


@dataclass
class AuditReport:
    """The outcome of one `audit verify` run."""

    window: str
    strict: bool = False
    events: int = 0
    seconds: float = 0.0
    by_stream: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)
    """valid / unsigned / invalid / missing / unknown_signer, and `cached` (valid, from cache)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """Intents by outcome: filled, rejected, dead_lettered, handed_over, pending, unchecked."""
    ledger: dict[str, Any] = field(default_factory=dict)
    market: dict[str, Any] = field(default_factory=dict)
    """What the approvals' prices were compared with (ops.audit.market)."""
    discrepancies: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def error(self, check: Check, what: str, **where: Any) -> None:
        self.discrepancies.append(Finding(check, what, **where))

    def warn(self, check: Check, what: str, **where: Any) -> None:
        """Record a warning; with `strict` it counts as a discrepancy."""
        target = self.discrepancies if self.strict else self.warnings
        target.append(Finding(check, what, **where))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "window": self.window,
            "strict": self.strict,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events_per_s, 1),
            "by_stream": dict(self.by_stream),
            "signatures": dict(self.signatures),
            "intents": dict(self.outcomes),
            "ledger": self.ledger,
            "market": self.market,
            "discrepancies": [f.to_json() for f in self.discrepancies],
            "warnings": [f.to_json() for f in self.warnings],
            "notes": self.notes,
        }

    def render(self, limit: int = 200) -> str:
        """Return the report as text: summary lines, then every discrepancy and warning."""
        streams = ", ".join(f"{name} {count:,}" for name, count in self.by_stream.items())
        sigs = ", ".join(f"{count:,} {name}" for name, count in sorted(self.signatures.items()))
        intents = ", ".join(f"{count:,} {name}" for name, count in sorted(self.outcomes.items()))
        lines = [
            f"audit {self.window}: {self.events:,} events in {self.seconds:.2f}s "
            f"({self.events_per_s:,.0f} events/s)",
            f"  streams:    {streams or 'none'}",
            f"  signatures: {sigs or 'none'}",
            f"  intents:    {intents or 'none'}",
        ]
        if self.ledger:
            lines.append("  ledger:     " + ", ".join(f"{k} {v}" for k, v in self.ledger.items()))
        if self.market:
            lines.append("  market:     " + ", ".join(f"{k} {v}" for k, v in self.market.items()))
        lines += [f"  note: {note}" for note in self.notes]
        for title, found in (("DISCREPANCIES", self.discrepancies), ("WARNINGS", self.warnings)):
            if not found:
                continue
            lines.append(f"{title} ({len(found)}):")
            lines += [f"  {f.line()}" for f in found[:limit]]
            if len(found) > limit:
                lines.append(f"  ... and {len(found) - limit} more (use --json for all)")
        verdict = "PASS" if self.ok else f"FAIL ({len(self.discrepancies)} discrepancies)"
        lines.append(f"result: {verdict}")
        return "\n".join(lines)
