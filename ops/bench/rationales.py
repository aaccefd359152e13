"""End to end with a rationale on every intent: the analyst's retrieval has to embed each one.

`ops.bench.e2e` submits intents without a rationale, so every retrieval query the analyst makes
is one it has embedded before (a cache hit). Here every intent carries its own rationale, as a
desk's would: 10 to 40 words from trading-desk phrases with symbols, accounts, prices and sizes
mixed in and a ticket number at the end, so no two are equal and no query is cached. The
generator is deterministic: `rationale(seed, i)` is the i-th text of a seed, whatever was
generated before it, and no text addresses the reviewer (the analyst would reject it as prompt
injection) or is vague (it would ask for a review).

`run_rationales_bench` runs, on one stack, today's intents without a rationale and the same load
with varied rationales: the maximum throughput (intents published as fast as the client can)
and the latency at an offered 50/s, submitted -> `ledger.posted`. Each kind of intent is warmed
first (connections, the analyst's encoder), with intents of its own.

Run alone: `python -m ops.bench.rationales [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ops.bench.e2e import LOW_RATE_PER_S, max_throughput, paced_latency, percentile, warm_desk

SEED: Final = 11
MIN_WORDS: Final = 10
MAX_WORDS: Final = 40
INTENTS: Final = 10_000
INTENTS_QUICK: Final = 2_000
VARIED_INTENTS: Final = 3_000
VARIED_INTENTS_QUICK: Final = 1_000
"""Fewer with rationales: on two cores they are posted at tens per second, not hundreds."""
VARIED_WARMUP: Final = 100
WAIT_S: Final = 900.0
"""How long a run with rationales may wait for its last intent (at 5/s, 3,000 intents)."""
LOW_SECONDS: Final = 15.0
LOW_SECONDS_QUICK: Final = 5.0
TARGET_RATE_PER_S: Final = 300.0
TARGET_P99_MS: Final = 60.0
"""Targets with varied rationales: throughput, and p99 latency at `LOW_RATE_PER_S`."""

# -- the vocabulary --------------------------------------------------------------------------------

SYMBOLS: Final = ("BTC", "ETH", "BTC-USD", "ETH-USD", "SOL", "SPY", "QQQ", "AAPL", "NVDA", "MSFT",
                  "TLT", "GLD", "EURUSD", "USDJPY", "ES futures", "the 10y")  # fmt: skip
ACCOUNTS: Final = ("paper-1", "macro-2", "fund-a", "ptf-7", "rv-book", "client-114", "treasury",
                   "vol-3", "crypto-core", "delta-1")  # fmt: skip
EVENTS: Final = ("CPI", "the FOMC minutes", "the ECB decision", "payrolls", "the options expiry",
                 "the quarterly index rebalance", "month-end", "earnings", "the BoJ meeting",
                 "the Treasury auction", "the token unlock", "the PCE print",
                 "Jackson Hole")  # fmt: skip
DESKS: Final = ("MAC", "D1", "VOL", "CRY", "RV", "EQ", "FX", "TSY")
DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "last week", "yesterday")
PRICE_LEVEL: Final = {"BTC": 65000, "ETH": 3200, "BTC-USD": 65000, "ETH-USD": 3200, "SOL": 150,
                      "SPY": 560, "QQQ": 480, "AAPL": 190, "NVDA": 130, "MSFT": 420, "TLT": 92,
                      "GLD": 215, "EURUSD": 1.08, "USDJPY": 151, "ES futures": 5600,
                      "the 10y": 4.2}  # fmt: skip

ACTIONS: Final = (
    "rebalance {sym} after the index reweighting",
    "hedge the overnight {sym} exposure ahead of {event}",
    "trim {sym} into strength after the {pct}% move since {day}",
    "add to the core {sym} position in {acct}",
    "cover the short {sym} leg of the basis trade",
    "roll the {sym} hedge forward before {event}",
    "reduce gross {sym} exposure to bring {acct} back inside its risk budget",
    "buy back the {sym} sold {day} at {px} for {acct}",
    "scale into {sym} on the pullback to the {n}-day moving average",
    "fill the client order in {sym} for {acct} in the afternoon session",
    "top up {sym} collateral for the {acct} margin call",
    "unwind the {sym} pair leg with the spread back to {bps} bps",
    "rotate out of {sym} into {sym2} after the sector downgrade",
    "lock in gains on the {sym} swing position opened {day}",
    "neutralise the delta of the {sym} options book before {event}",
    "put on a starter {sym} position for the new mandate in {acct}",
)
REASONS: Final = (
    "the funding rate flipped to {bps} bps annualised",
    "implied vol trades {pct}% above realised over {n} days",
    "the PM signed off on a {pct}% NAV allocation this morning",
    "liquidity usually thins out into the weekend",
    "the desk's VaR usage reached {pct}% of its limit",
    "{event} lands at {hour}:30 UTC",
    "the tracking error against the benchmark widened to {bps} bps",
    "the basis between spot and perps narrowed to {bps} bps",
    "the position drifted {pct}% over its target weight",
    "the client asked for exposure to be flat by the close",
    "correlation with {sym2} broke down over the last {n} sessions",
    "the research note {day} cut the fair value to {px}",
)
DETAILS: Final = (
    "sized at {pct}% of NAV",
    "working it over {n} minutes to limit market impact",
    "target entry near {px}",
    "stop below {px}",
    "as agreed in the {day} risk meeting",
    "benchmark drift is {bps} bps",
    "booked to {acct}",
    "size agreed on the {desk} morning call",
    "no change to the longer-term view on {sym2}",
    "leaves net exposure at {pct}% of the limit",
    "expected slippage under {bps} bps",
    "paired with an offsetting {sym2} trade later today",
    "spread over {n} child orders",
    "consistent with the {event} playbook",
)
CONNECTORS: Final = ("because", "as", "since", "now that", "given that")


def _words(text: str) -> int:
    return len(text.split())


def rationale(seed: int, index: int) -> str:
    """Return the `index`-th rationale of `seed`: 10-40 words, unique by its ticket number."""
    rng = random.Random(f"{seed}:{index}")  # a string seed: the same text on every run
    sym, sym2 = rng.sample(SYMBOLS, 2)

    def fill(template: str) -> str:
        level = PRICE_LEVEL[sym]
        return template.format(
            sym=sym, sym2=sym2, acct=rng.choice(ACCOUNTS), event=rng.choice(EVENTS),
            day=rng.choice(DAYS), desk=rng.choice(DESKS), n=rng.choice((3, 5, 10, 20, 50, 200)),
            pct=f"{rng.uniform(0.2, 18):.1f}", bps=rng.randint(2, 180), hour=rng.randint(12, 19),
            px=f"{level * rng.uniform(0.93, 1.07):,.{2 if level < 1000 else 0}f}",
        )  # fmt: skip

    ticket = f"{rng.choice(DESKS)}-{10_000 + index}"  # two words with "ticket"
    target = rng.randint(MIN_WORDS, MAX_WORDS)
    head = fill(rng.choice(ACTIONS))
    reason = f"{rng.choice(CONNECTORS)} {fill(rng.choice(REASONS))}"
    if _words(head) + _words(reason) + 2 <= target or _words(head) + 2 < MIN_WORDS:
        head = f"{head} {reason}"
    details: list[str] = []
    for template in rng.sample(DETAILS, len(DETAILS)):
        detail = fill(template)
        if _words(head) + sum(map(_words, details)) + _words(detail) + 2 > target:
            break
        details.append(detail)
    text = ", ".join([head, *details])
    if rng.random() < 0.3:
        return f"Ticket {ticket}: {text}."
    return f"{text[0].upper()}{text[1:]} (ticket {ticket})."


@dataclass
class Rationales:
    """An endless, deterministic supply of distinct rationales: `next()` gives the next one."""

    seed: int = SEED
    index: int = 0
    issued: list[str] = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        text = rationale(self.seed, self.index)
        self.index += 1
        self.issued.append(text)
        return text


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantRun:
    """One kind of intent: its maximum throughput and its latency at `LOW_RATE_PER_S`."""

    rate_per_s: float
    intents: int
    seconds: float
    low_p50_ms: float
    low_p99_ms: float
    low_count: int


@dataclass(frozen=True)
class RationalesResult:
    plain: VariantRun
    """Intents without a rationale (today's e2e load)."""
    varied: VariantRun
    """Every intent with a rationale of its own."""
    distinct: int
    """Distinct rationales among those submitted."""
    submitted: int
    words: tuple[int, int, float]
    """Fewest, most and mean words of the submitted rationales."""


def _variant(n: int, rate: float, seconds: float, low_ms: list[float]) -> VariantRun:
    return VariantRun(
        rate_per_s=rate,
        intents=n,
        seconds=seconds,
        low_p50_ms=statistics.median(low_ms),
        low_p99_ms=percentile(low_ms, 0.99),
        low_count=len(low_ms),
    )


async def run_rationales_bench(
    n: int, n_varied: int, low_seconds: float, seed: int = SEED
) -> RationalesResult:
    """Both kinds on one stack: throughput of `n` plain and `n_varied` with a rationale each, then
    the latency of each at the low rate."""
    source = Rationales(seed)
    async with warm_desk(n) as (_stack, client, ops):
        await max_throughput(client, ops, VARIED_WARMUP, source, WAIT_S)  # the encoder
        plain_rate, plain_s = await max_throughput(client, ops, n)
        varied_rate, varied_s = await max_throughput(client, ops, n_varied, source, WAIT_S)
        plain_low = await paced_latency(client, ops, LOW_RATE_PER_S, low_seconds)
        varied_low = await paced_latency(client, ops, LOW_RATE_PER_S, low_seconds, source, WAIT_S)
    counts = [len(text.split()) for text in source.issued]
    return RationalesResult(
        plain=_variant(n, plain_rate, plain_s, plain_low.latencies_ms),
        varied=_variant(n_varied, varied_rate, varied_s, varied_low.latencies_ms),
        distinct=len(set(source.issued)),
        submitted=len(source.issued),
        words=(min(counts), max(counts), statistics.fmean(counts)),
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(r: RationalesResult) -> list[tuple[str, str, str, str]]:
    """The rows (case, value, target, verdict) of the benchmark's table."""
    low = f"{LOW_RATE_PER_S:.0f}/s"
    fewest, most, mean = r.words
    return [
        (
            "intents: at full speed, then at " + low,
            f"no rationale {r.plain.intents:,}, {r.plain.low_count:,}; "
            f"varied rationales {r.varied.intents:,}, {r.varied.low_count:,}",
            "",
            "",
        ),
        (
            "rationales submitted (distinct), words",
            f"{r.submitted:,} ({r.distinct:,}), {fewest}-{most} words, mean {mean:.0f}",
            "all distinct",
            "PASS" if r.distinct == r.submitted else "FAIL",
        ),
        ("throughput intents/s, no rationale", f"{r.plain.rate_per_s:,.0f}", "", ""),
        (
            "throughput intents/s, varied rationales",
            f"{r.varied.rate_per_s:,.0f}",
            f">= {TARGET_RATE_PER_S:,.0f}",
            _verdict(r.varied.rate_per_s >= TARGET_RATE_PER_S),
        ),
        (
            f"latency p50/p99 at {low}, no rationale",
            f"{r.plain.low_p50_ms:.1f} / {r.plain.low_p99_ms:.1f} ms",
            "",
            "",
        ),
        (
            f"latency p50/p99 at {low}, varied rationales",
            f"{r.varied.low_p50_ms:.1f} / {r.varied.low_p99_ms:.1f} ms",
            f"p99 <= {TARGET_P99_MS:.0f} ms",
            _verdict(r.varied.low_p99_ms <= TARGET_P99_MS),
        ),
    ]


async def bench(quick: bool) -> list[tuple[str, str, str, str]]:
    """The benchmark at its full or quick size, as table rows."""
    result = await run_rationales_bench(
        INTENTS_QUICK if quick else INTENTS,
        VARIED_INTENTS_QUICK if quick else VARIED_INTENTS,
        LOW_SECONDS_QUICK if quick else LOW_SECONDS,
    )
    return table(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.rationales")
    parser.add_argument("--quick", action="store_true", help="2,000 / 1,000 intents, 5 s at 50/s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)
    rows = asyncio.run(bench(args.quick))
    for row in rows:
        print(" | ".join(cell for cell in row if cell))
    return 1 if any(row[3] == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
