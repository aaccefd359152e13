"""What checking an input's provenance costs: one Ed25519 verification per message.

The risk gate, the executor and the ledger verify every input (`bus.runtime`): the signature
over subject and payload, and that the signer publishes that subject. Measured in process, in
CPU time, on events of the size real users send (an analysis carrying a ~1 KB rationale).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bus import Credentials, Signer, Verifier
from bus.signing import SignatureStatus
from contracts import (
    Analysis,
    Identity,
    IntentAnalyzed,
    Recommendation,
    Side,
    TradeIntent,
)
from contracts import subjects as s
from ops.pki.certs import init_certs

RATIONALE = "Rebalances the core BTC position after the weekly review; sized to the desk's " * 14


@dataclass(frozen=True)
class VerifyCost:
    messages: int
    payload_bytes: int
    us_per_message: float
    """CPU microseconds per verification (signature and signer check)."""


def sample_event() -> IntentAnalyzed:
    intent = TradeIntent(
        intent_id=uuid.uuid4(), account="paper-1", symbol="BTC-USD", side=Side.BUY,
        quantity=Decimal("0.5"), rationale=RATIONALE[:1000],
    )  # fmt: skip
    review = Analysis(recommendation=Recommendation.APPROVE, confidence=0.9,
                      rationale=RATIONALE[:1000], model="offline-reviewer")  # fmt: skip
    return IntentAnalyzed.derive(
        intent_id=intent.intent_id, producer=Identity.ANALYST, intent=intent,
        reference_price=Decimal("67000"), reference_price_ts=datetime.now(UTC), analysis=review,
    )  # fmt: skip


def measure_verify_cost(messages: int = 5000) -> VerifyCost:
    """Verify `messages` signed analyses; return the CPU cost per message."""
    with tempfile.TemporaryDirectory(prefix="tradeops-bench-verify-") as tmp:
        init_certs(Path(tmp))
        certs = Path(tmp) / "certs"
        signer = Signer.from_file(
            Identity.ANALYST, Credentials(Identity.ANALYST, certs).signing_key_file
        )
        verifier = Verifier.from_dir(certs)
    event = sample_event()
    subject = s.intent_event(s.INTENT_ANALYZED, "BTC-USD", event.intent_id)
    payload = event.model_dump_json().encode()
    headers = signer.headers(subject, payload)
    for _ in range(100):  # warm up
        verifier.check(subject, payload, headers)
    started = time.process_time()
    for _ in range(messages):
        status, _signer = verifier.check(subject, payload, headers)
        assert status is SignatureStatus.VALID
    spent = time.process_time() - started
    return VerifyCost(messages, len(payload), spent / messages * 1e6)
