"""The hop benchmark moves every message through each variant exactly once (behaviour only)."""

from __future__ import annotations

import pytest

from ops.bench import Variant, run_hop_bench

pytestmark = pytest.mark.integration

N = 40


async def test_hop_bench_when_run_then_each_variant_outputs_and_acks_exactly_n() -> None:
    result = await run_hop_bench(N, rounds=1, warmup=False)

    assert sorted(r.variant for r in result.runs) == sorted(Variant)
    for run in result.runs:
        assert (run.variant, run.outputs, run.inputs_acked) == (run.variant, N, N)
        assert run.seconds > 0
