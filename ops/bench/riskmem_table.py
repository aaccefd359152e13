"""The risk memory benchmark's table (`ops.bench.riskmem`): the configured bound against a small
one, at each checkpoint."""

from __future__ import annotations

from collections import Counter

from agents.risk.config import RiskMemory
from ops.bench.procmem import KIB_PER_MIB
from ops.bench.riskmem import Checkpoint, MemoryRun, RiskMemResult


def _bound(memory: RiskMemory) -> str:
    return f"events {memory.remembered_events:,} / decisions {memory.remembered_decisions:,}"


def _mib(kib: int) -> str:
    return f"{kib / KIB_PER_MIB:,.0f} MiB"


def _pair(configured: int, baseline: int) -> str:
    return f"{_mib(configured)} vs {_mib(baseline)}  ({configured / baseline:.2f}x)"


def _growth_per_10k(run: MemoryRun, start: Checkpoint) -> float:
    """MiB the gate's RSS grew per 10,000 intents from `start` to the end of the run."""
    intents = run.last.decided - start.decided
    return (run.last.memory.rss_kib - start.memory.rss_kib) / KIB_PER_MIB * 10_000 / intents


def table(result: RiskMemResult) -> list[tuple[str, str, str, str]]:
    """Return the benchmark's rows as (case, value, target, verdict)."""
    conf, base = result.configured, result.baseline
    rows = [
        ("bounds: configured vs small", f"{_bound(conf.memory)} vs {_bound(base.memory)}", "", ""),
        (
            "intents decided (approved / rejected)",
            f"{conf.last.decided:,} in {conf.last.seconds:.0f} s ({conf.rate_per_s:,.0f}/s; "
            f"{conf.approved:,} / {conf.rejected:,}) vs {base.last.decided:,} in "
            f"{base.last.seconds:.0f} s ({base.rate_per_s:,.0f}/s; "
            f"{base.approved:,} / {base.rejected:,})",
            "",
            "",
        ),
        ("risk RSS, ready (0 decided)", _pair(conf.ready.rss_kib, base.ready.rss_kib), "", ""),
    ]
    for c, b in zip(conf.checkpoints, base.checkpoints, strict=True):
        rows.append(
            (
                f"risk RSS at {c.decided:,} decided",
                _pair(c.memory.rss_kib, b.memory.rss_kib),
                "",
                "",
            )
        )
    rows.append(
        (
            f"risk peak VmHWM at {conf.last.decided:,}",
            _pair(conf.last.memory.hwm_kib, base.last.memory.hwm_kib),
            "",
            "",
        )
    )
    if len(conf.checkpoints) >= 3:
        first, middle = conf.checkpoints[0], conf.checkpoints[-2]

        def growth(run: MemoryRun) -> str:
            return " / ".join(
                f"{_growth_per_10k(run, run.at(start.decided)):+.1f}" for start in (first, middle)
            )

        rows.append(
            (
                f"RSS growth per 10k intents, {first.decided:,} / {middle.decided:,} -> end",
                f"{growth(conf)} MiB vs {growth(base)} MiB",
                "",
                "",
            )
        )
    rows.append(
        (
            f"what the configured bound costs at {conf.last.decided:,}",
            f"+{(conf.last.memory.rss_kib - base.last.memory.rss_kib) / KIB_PER_MIB:,.0f} MiB RSS",
            "",
            "",
        )
    )
    if conf.reasons or base.reasons:
        reasons = Counter(conf.reasons) + Counter(base.reasons)
        listed = ", ".join(f"{reason} {n:,}" for reason, n in reasons.most_common())
        rows.append(("rejection reasons (both runs)", listed, "", ""))
    problems = [
        f"{label}: {problem}"
        for label, run in (("configured", conf), ("small", base))
        for problem in (
            f"{run.dead_lettered:,} dead-lettered" if run.dead_lettered else "",
            f"risk restarted {run.risk_restarts}x" if run.risk_restarts else "",
            f"{run.unbooked:,} approvals without an outcome" if run.unbooked else "",
        )
        if problem
    ]
    rows.append(
        (
            "every intent decided, one risk process",
            "; ".join(problems) if problems else "yes, in both runs",
            "yes",
            "FAIL" if problems else "PASS",
        )
    )
    return rows
