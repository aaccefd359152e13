"""Nothing executes once a halt is observable: each fill against the trading state at its time.

The state follows the one rule (`contracts.control`) over the CONTROL messages in stream order;
a fill stored more than `HALT_GRACE_S` after a halt was stored (and before a resume) is named.
The grace covers an order already at the broker when the halt was stored (the kill-switch tests
measure halts observed by every agent within about 10 ms). Times are the server's stored times,
never a publisher's stamp.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta

from bus.replay import stored_time
from contracts.control import ControlMessage, effect
from contracts.kinds import CONTROL, FILLED
from contracts.types import TradingState
from ops.audit.facts import Fact
from ops.audit.report import AuditReport, Check

HALT_GRACE_S = 1.0


def judge_halts(facts: list[Fact], report: AuditReport) -> None:
    """Name every trusted fill stored while the desk had been halted for over the grace."""
    controls = sorted((f for f in facts if f.kind == CONTROL), key=lambda f: f.seq)
    fills = [f for f in facts if f.kind == FILLED and f.trusted and f.stored_at]
    if not controls or not fills:
        return
    times: list[datetime] = []
    states: list[tuple[TradingState, int, datetime]] = []
    current: tuple[TradingState, int, datetime] | None = None
    for fact in controls:  # in stream order: the newest message that takes effect decides
        signed = fact.trusted and fact.signed and fact.signer == "ops"
        at = stored_time(fact.stored_at)
        state = effect(ControlMessage(fact.seq, fact.subject, fact.data or b"", signed))
        if state is not None:
            current = (state, fact.seq, at)
        times.append(at)
        states.append(current or (TradingState.ACTIVE, 0, at))
    grace = timedelta(seconds=HALT_GRACE_S)
    for fill in fills:
        filled_at = stored_time(fill.stored_at)
        i = bisect.bisect_right(times, filled_at - grace) - 1
        if i < 0 or states[i][0] is not TradingState.HALTED:
            continue
        _, seq, halted_at = states[i]
        late_ms = (filled_at - halted_at).total_seconds() * 1000
        report.error(
            Check.HALT,
            f"filled {late_ms:.0f} ms after the halt (CONTROL #{seq}) was stored",
            stream=fill.stream, seq=fill.seq, intent_id=fill.intent_id,
        )  # fmt: skip
