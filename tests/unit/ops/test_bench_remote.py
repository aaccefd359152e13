"""The remote-model benchmark's arithmetic and verdicts, its fake model's answers, and the scratch
config that points the analyst at it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agents.analyst.config import Provider
from agents.analyst.output import parse_output
from agents.analyst.prompt import BEGIN_PASSAGES, END_PASSAGES
from agents.settings import load_settings
from ops.bench.remote import (
    TARGET_ONE_PER_S,
    OfferedRun,
    RemoteResult,
    sustained_rate,
    table,
)
from ops.bench.remote_model import FakeChatModel, ModelCounts, cited_refs, review_content
from ops.stack.scratch import write_scratch_config


def run(
    replicas: int = 1,
    rate: float = 60.0,
    sustained: float = 60.0,
    *,
    cap: int | None = None,
    degraded: int = 0,
    calls: int = 600,
    unfinished: int = 0,
) -> OfferedRun:
    submitted = int(rate * 10)
    return OfferedRun(
        replicas=replicas,
        offered_per_s=rate,
        seconds=10.0,
        cap=cap,
        submitted=submitted,
        unfinished=unfinished,
        sustained_per_s=sustained,
        latencies_ms=tuple(float(i) for i in range(1, submitted - unfinished + 1)),
        analyzed=submitted - unfinished,
        degraded=degraded,
        model=ModelCounts(calls, calls, 0, 0, 32),
        redeliveries=0,
    )


def verdicts(result: RemoteResult) -> dict[str, str]:
    return {case: verdict for case, _, _, verdict in table(result) if verdict}


# -- sustained rate, latency -----------------------------------------------------------------------


def test_completions_evenly_spread_at_sixty_per_second_sustain_sixty() -> None:
    times = [5.0 + i / 60 for i in range(600)]

    assert sustained_rate(times) == pytest.approx(60.0)


def test_a_few_stragglers_at_either_end_do_not_move_the_sustained_rate() -> None:
    times = [0.0, 0.1, *(10.0 + i / 30 for i in range(300)), 60.0, 90.0]

    assert sustained_rate(times) == pytest.approx(30.0, rel=0.02)


def test_fewer_than_two_completions_sustain_nothing() -> None:
    assert sustained_rate([]) == sustained_rate([3.0]) == 0.0


def test_unfinished_intents_count_as_infinitely_late_in_the_percentiles() -> None:
    finished = run(unfinished=0)
    late = run(unfinished=60)  # 10% of the run never posted

    assert math.isfinite(finished.latency_ms(0.99))
    assert late.latency_ms(0.99) == math.inf
    assert math.isfinite(late.latency_ms(0.5))


# -- verdicts --------------------------------------------------------------------------------------


def test_one_analyst_keeping_up_with_one_call_each_and_nothing_degraded_passes() -> None:
    got = verdicts(RemoteResult((run(),)))

    assert got == {
        "1 analyst @ 60/s: sustained": "PASS",
        "1 analyst @ 60/s: degraded, model calls": "PASS",
    }


def test_a_retried_call_or_a_degraded_analysis_misses_the_exactly_one_call_target() -> None:
    retried = verdicts(RemoteResult((run(calls=601),)))
    degraded = verdicts(RemoteResult((run(degraded=1),)))

    assert retried["1 analyst @ 60/s: degraded, model calls"] == "MISS"
    assert degraded["1 analyst @ 60/s: degraded, model calls"] == "MISS"


def test_one_analyst_below_target_misses() -> None:
    got = verdicts(RemoteResult((run(sustained=TARGET_ONE_PER_S - 1),)))

    assert got["1 analyst @ 60/s: sustained"] == "MISS"


def test_two_analysts_are_compared_with_one_at_the_highest_offered_rate() -> None:
    scaled = RemoteResult((run(1, 120.0, 30.0), run(2, 120.0, 58.0), run(1, 60.0), run(2, 60.0)))
    flat = RemoteResult((run(1, 120.0, 30.0), run(2, 120.0, 40.0)))

    assert verdicts(scaled)["2 analysts / 1 @ 120/s, sustained"] == "PASS"
    assert verdicts(flat)["2 analysts / 1 @ 120/s, sustained"] == "MISS"


def test_the_replica_ratio_is_not_judged_when_one_analyst_already_keeps_up() -> None:
    rows = table(RemoteResult((run(1, 60.0, 60.0), run(2, 60.0, 60.0))))

    (row,) = [r for r in rows if r[0].startswith("2 analysts / 1")]
    assert row[3] == "n/a" and "already keeps up" in row[1]


def test_the_capped_run_passes_only_with_enough_throughput_and_little_degraded() -> None:
    ok = run(rate=60.0, sustained=15.0, cap=16, degraded=6)  # 1%
    degraded = run(rate=60.0, sustained=15.0, cap=16, degraded=7)
    slow = run(rate=60.0, sustained=10.0, cap=16)
    case = "cap 16 in flight @ 60/s: sustained, degraded"

    assert verdicts(RemoteResult((ok,)))[case] == "PASS"
    assert verdicts(RemoteResult((degraded,)))[case] == "MISS"
    assert verdicts(RemoteResult((slow,)))[case] == "MISS"


# -- the fake model's pure parts -------------------------------------------------------------------


def test_the_answer_delays_are_seeded_and_within_the_jitter() -> None:
    a, b = FakeChatModel(seed=5), FakeChatModel(seed=5)

    delays = [a.delay_s() for _ in range(1_000)]

    assert delays == [b.delay_s() for _ in range(1_000)]
    assert min(delays) >= 0.7 and max(delays) <= 1.3
    assert sum(delays) / len(delays) == pytest.approx(1.0, abs=0.03)


def test_the_answer_cites_the_prompts_first_passage_and_parses_as_a_review() -> None:
    refs = ["a.md#One", "b.md#Two"]
    passages = json.dumps([{"ref": r, "text": "..."} for r in refs])
    prompt = "\n".join(["x", BEGIN_PASSAGES, passages, END_PASSAGES])
    body = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": prompt}]}

    content = review_content(cited_refs(body))

    assert cited_refs(body) == refs
    assert parse_output(content, frozenset(refs)).citations == ("a.md#One",)


def test_a_prompt_without_passages_gets_an_answer_without_citations() -> None:
    assert cited_refs({"messages": [{"role": "user", "content": "no blocks"}]}) == []
    assert cited_refs({"messages": []}) == []


# -- the scratch config ----------------------------------------------------------------------------


def test_the_scratch_config_points_the_analyst_at_the_given_server(tmp_path: Path) -> None:
    write_scratch_config(
        tmp_path,
        analyst={"provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1",
                 "model": "bench-model", "max_tokens_per_day": 10**12},
    )  # fmt: skip

    analyst = load_settings(tmp_path).analyst

    assert analyst.provider is Provider.OPENAI_COMPATIBLE
    assert (analyst.base_url, analyst.model) == ("http://127.0.0.1:9/v1", "bench-model")
    assert analyst.max_tokens_per_day == 10**12
    assert analyst.timeout_s == 20.0  # the rest at its defaults


def test_an_analyst_key_the_settings_do_not_have_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a key the settings do not have"):
        write_scratch_config(tmp_path, analyst={"provider": "offline", "temperature": 0.2})
