"""The analyst's query embedding: CPU per text, torch (as it ran before) against OpenVINO.

Each text is a rationale of its own (`ops.bench.rationales.rationale`: 10 to 40 words of desk
prose with symbols, prices and a ticket number; 39 tokens on average), as every intent of a desk
carries one. Batches of 1, 8, 64 and 256 texts are embedded by each encoder in turn, the two
alternating round by round on fresh texts so that a busy shared machine weighs on both alike;
the figure is the median over rounds of the process's CPU time (every thread) per text. A torch
run with one thread is shown beside them: the thread setting alone, without a new runtime.

Behaviour check (FAIL): every OpenVINO vector within cosine `MIN_COSINE` of torch's.

Run alone: `python -m ops.bench.embed [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from knowledge.encoder import Backend, Encoder, Vectors, load_encoder
from ops.bench.rationales import rationale

SEED: Final = 23
BATCHES: Final = (1, 8, 64, 256)
TEXTS_PER_ROUND: Final = 64
"""Texts each encoder embeds per batch size and round (at least one batch)."""
CHECK_TEXTS: Final = 256
ROUNDS: Final = 5
ROUNDS_QUICK: Final = 3
TARGET_MS: Final = 2.0
"""OpenVINO CPU per text from batches of 8 up (one unique rationale per intent)."""
MIN_COSINE: Final = 0.999

Row = tuple[str, str, str, str]


@dataclass
class Series:
    """CPU milliseconds per text, one figure per round, by batch size."""

    ms: dict[int, list[float]] = field(default_factory=dict)

    def add(self, batch: int, value: float) -> None:
        self.ms.setdefault(batch, []).append(value)

    def median(self, batch: int) -> float:
        return statistics.median(self.ms[batch])


@dataclass
class EmbedResult:
    old: Series
    new: Series
    torch_one_thread: Series
    min_cosine: float
    rounds: int
    new_name: str


def _texts(start: int) -> Iterator[str]:
    index = start
    while True:
        yield rationale(SEED, index)
        index += 1


def _cpu_ms_per_text(encode: Callable[[Sequence[str]], Vectors], batches: list[list[str]]) -> float:
    started = time.process_time()
    for batch in batches:
        encode(batch)
    return (time.process_time() - started) * 1000 / sum(len(b) for b in batches)


def _torch_threads(n: int | None) -> int:
    """Set torch's intra-op threads (None: leave them); return the previous setting."""
    import torch  # noqa: PLC0415

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    return before


def run_embed_bench(quick: bool = False) -> list[Row]:
    """Measure both encoders; return rows (case, value, target, verdict) for the bench table."""
    return table(measure(ROUNDS_QUICK if quick else ROUNDS))


def measure(rounds: int) -> EmbedResult:
    """Embed fresh rationales with each encoder, alternating, `rounds` times per batch size."""
    old: Encoder = load_encoder(Backend.TORCH)
    new: Encoder = load_encoder(Backend.OPENVINO)
    source = _texts(0)
    checked = [next(source) for _ in range(CHECK_TEXTS)]  # also warms both up
    ref, got = old.encode(checked), new.encode(checked)
    min_cosine = float(np.min(np.sum(ref * got, axis=1)))
    threads = _torch_threads(None)
    result = EmbedResult(Series(), Series(), Series(), min_cosine, rounds, new.name)
    for batch in BATCHES:
        per_round = max(batch, TEXTS_PER_ROUND)
        for _ in range(rounds):
            for series, encoder, torch_threads in (
                (result.old, old, threads),
                (result.new, new, threads),
                (result.torch_one_thread, old, 1),
            ):
                texts = [next(source) for _ in range(per_round)]
                batches = [texts[i : i + batch] for i in range(0, per_round, batch)]
                _torch_threads(torch_threads)
                try:
                    series.add(batch, _cpu_ms_per_text(encoder.encode, batches))
                finally:
                    _torch_threads(threads)
    return result


def table(r: EmbedResult) -> list[Row]:
    """The bench's rows: per batch size old, new and their ratio, then the cosine check."""
    rows: list[Row] = [
        ("encoders", f"torch (sentence-transformers, fp32) vs {r.new_name}", "", ""),
        ("method", f"CPU ms per text, median of {r.rounds} alternating rounds", "", ""),
    ]
    for batch in BATCHES:
        old, new = r.old.median(batch), r.new.median(batch)
        one = r.torch_one_thread.median(batch)
        target = f"<= {TARGET_MS:.1f} ms" if batch >= 8 else ""
        verdict = ("PASS" if new <= TARGET_MS else "MISS") if batch >= 8 else ""
        rows.append(
            (
                f"batch {batch}",
                f"torch {old:.2f} ms -> openvino {new:.2f} ms ({old / new:.1f}x less CPU); "
                f"torch with 1 thread {one:.2f} ms",
                target,
                verdict,
            )
        )
    rows.append(
        (
            "cosine openvino vs torch",
            f"min {r.min_cosine:.5f}",
            f">= {MIN_COSINE}",
            "PASS" if r.min_cosine >= MIN_COSINE else "FAIL",
        )
    )
    return rows


async def bench(quick: bool) -> list[Row]:
    """`run_embed_bench` off the event loop, for `ops.bench`'s table."""
    return await asyncio.to_thread(run_embed_bench, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    for case, value, target, verdict in run_embed_bench(args.quick):
        print(f"{case:<26} {value}  {target}  {verdict}".rstrip())


if __name__ == "__main__":
    main()
