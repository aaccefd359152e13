"""The risk memory benchmark reads a process's memory from /proc, drives a load that stays inside
the limits, and reports what it measured."""

from __future__ import annotations

import os
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from agents.risk.config import RiskMemory
from agents.settings import load_settings
from ops.bench.procmem import ProcMemory, parse_status, read_memory
from ops.bench.riskmem import (
    ACCOUNTS,
    QUANTITIES,
    SYMBOLS,
    Checkpoint,
    MemoryRun,
    RiskMemResult,
    checkpoints,
    intent_terms,
    with_risk_memory,
)
from ops.bench.riskmem_table import table
from ops.stack.scratch import write_scratch_config

STATUS = """\
Name:\tpython
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t  1351220 kB
VmSize:\t  1282696 kB
VmHWM:\t   241388 kB
VmRSS:\t   236504 kB
RssAnon:\t   180992 kB
Threads:\t5
"""


def test_rss_and_peak_are_read_in_kib_from_a_status_text() -> None:
    memory = parse_status(STATUS)

    assert memory == ProcMemory(rss_kib=236_504, hwm_kib=241_388)
    assert memory.rss_mib == pytest.approx(230.96, abs=0.01)


def test_a_status_without_resident_memory_is_an_error_not_zero() -> None:
    kernel_thread = "Name:\tkworker/0:1\nState:\tI (idle)\nThreads:\t1\n"

    with pytest.raises(ValueError, match="VmHWM or VmRSS"):
        parse_status(kernel_thread)


def test_this_process_is_resident_and_its_peak_is_at_least_its_rss() -> None:
    memory = read_memory(os.getpid())

    assert 10 < memory.rss_mib <= memory.hwm_mib


def test_the_load_touches_every_account_symbol_side_and_quantity() -> None:
    terms = [intent_terms(n) for n in range(1000)]

    assert {t[0] for t in terms} == set(ACCOUNTS)
    assert {t[1] for t in terms} == set(SYMBOLS)
    assert {t[2] for t in terms} == {"buy", "sell"}
    assert {t[3] for t in terms} == set(QUANTITIES)


def test_every_position_stays_within_one_order_of_flat_however_long_the_run() -> None:
    largest = max(Decimal(q) for q in QUANTITIES)
    position: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for n in range(100_000):
        account, symbol, side, quantity = intent_terms(n)
        position[account, symbol] += Decimal(quantity) if side == "buy" else -Decimal(quantity)
        assert Decimal(0) <= position[account, symbol] <= largest
        if (n + 1) % (2 * len(ACCOUNTS) * len(SYMBOLS)) == 0:  # every line bought, then sold
            assert set(position.values()) == {Decimal(0)}


def test_memory_is_read_at_a_tenth_half_and_all_of_the_run() -> None:
    assert checkpoints(100_000) == (10_000, 50_000, 100_000)
    assert checkpoints(10_000) == (1_000, 5_000, 10_000)


def _run(memory: RiskMemory, ready_mib: int, mib: tuple[int, int, int], **kw: int) -> MemoryRun:
    marks = tuple(
        Checkpoint(decided, ProcMemory(m * 1024, (m + 5) * 1024), decided / 500)
        for decided, m in zip((10_000, 50_000, 100_000), mib, strict=True)
    )
    return MemoryRun(
        memory=memory,
        ready=ProcMemory(ready_mib * 1024, ready_mib * 1024),
        checkpoints=marks,
        approved=kw.get("approved", 100_000),
        rejected=0,
        reasons={},
        dead_lettered=kw.get("dead_lettered", 0),
        unbooked=0,
        risk_restarts=kw.get("risk_restarts", 0),
    )


def test_the_table_compares_each_checkpoint_with_the_small_bound_and_prices_the_bound() -> None:
    small = RiskMemory(remembered_decisions=1000, remembered_events=1000)
    result = RiskMemResult(
        configured=_run(RiskMemory(), 180, (220, 240, 260)),
        baseline=_run(small, 180, (190, 195, 200)),
    )

    rows = {case: (value, verdict) for case, value, _target, verdict in table(result)}

    assert rows["risk RSS at 100,000 decided"][0] == "260 MiB vs 200 MiB  (1.30x)"
    assert rows["risk peak VmHWM at 100,000"][0] == "265 MiB vs 205 MiB  (1.29x)"
    assert rows["RSS growth per 10k intents, 10,000 / 50,000 -> end"][0] == (
        "+4.4 / +4.0 MiB vs +1.1 / +1.0 MiB"
    )
    assert rows["what the configured bound costs at 100,000"][0] == "+60 MiB RSS"
    assert rows["every intent decided, one risk process"] == ("yes, in both runs", "PASS")


def test_a_dead_letter_or_a_restarted_gate_fails_the_run() -> None:
    small = RiskMemory(remembered_decisions=1000, remembered_events=1000)
    result = RiskMemResult(
        configured=_run(RiskMemory(), 180, (220, 240, 260), dead_lettered=3),
        baseline=_run(small, 180, (190, 195, 200), risk_restarts=1),
    )

    value, verdict = {c: (v, x) for c, v, _t, x in table(result)}[
        "every intent decided, one risk process"
    ]

    assert verdict == "FAIL"
    assert value == "configured: 3 dead-lettered; small: risk restarted 1x"


def test_the_bound_asked_for_is_the_one_the_gate_loads_from_the_scratch_config(
    tmp_path: Path,
) -> None:
    small = RiskMemory(remembered_decisions=1000, remembered_events=1000)
    config = write_scratch_config(tmp_path, accounts=dict.fromkeys(ACCOUNTS, "1000"))

    with_risk_memory(config, small)

    loaded = load_settings(tmp_path)
    assert loaded.risk == small
    assert [a.name for a in loaded.accounts] == list(ACCOUNTS)
