"""Benchmarks of tradeops' plumbing against the parts it is built on: `python -m ops.bench`."""

from ops.bench.hop import TARGET_VS_FASTSTREAM, TARGET_VS_RAW, HopResult, HopRun, run_hop_bench
from ops.bench.hop_variants import Variant

__all__ = [
    "TARGET_VS_FASTSTREAM",
    "TARGET_VS_RAW",
    "HopResult",
    "HopRun",
    "Variant",
    "run_hop_bench",
]
