"""JSON Schema export of every wire message, so clients in any language can publish intents."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contracts.events import (
    DeadLetter,
    IntentAccepted,
    IntentAnalyzed,
    LedgerPosted,
    MarketTick,
    OrderFilled,
    OrderRejected,
    RiskApproved,
    RiskRejected,
    TradingStateChanged,
)
from contracts.intent import SubmitIntent
from contracts.outcome import OutcomeAnswer, OutcomeQuery
from contracts.records import DeadLetterRetried, DeadLettersPurged

MESSAGES: dict[str, type[BaseModel]] = {
    "intent.submitted": SubmitIntent,
    IntentAccepted.kind: IntentAccepted,
    IntentAnalyzed.kind: IntentAnalyzed,
    RiskApproved.kind: RiskApproved,
    RiskRejected.kind: RiskRejected,
    OrderFilled.kind: OrderFilled,
    OrderRejected.kind: OrderRejected,
    LedgerPosted.kind: LedgerPosted,
    MarketTick.kind: MarketTick,
    TradingStateChanged.kind: TradingStateChanged,
    DeadLetter.kind: DeadLetter,
    DeadLetterRetried.kind: DeadLetterRetried,
    DeadLettersPurged.kind: DeadLettersPurged,
    "intent.outcome.query": OutcomeQuery,
    "intent.outcome.answer": OutcomeAnswer,
}


def export_schemas(directory: Path) -> list[Path]:
    """Write one `<kind>.schema.json` per message into `directory`; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, model in MESSAGES.items():
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://tradeops.dev/schemas/{kind}.schema.json"
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path = directory / f"{kind}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
