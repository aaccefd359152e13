"""Kill-switch latency: from the kill's publish acknowledgement to every agent reporting `halted`.

On one embedded stack (all five agents as processes, mutual TLS, file storage, Postgres), each
trial:

1. every agent reports `active`;
2. one poller per agent starts reading that agent's report, pausing `POLL_INTERVAL_S` between
   answers;
3. ops publishes `control.kill` (signed, stored in CONTROL) and notes when the publish ack is
   received;
4. the trial's figure is (receipt of the last agent's first `halted` answer) - (ack receipt);
5. ops resumes, and the same is measured until every agent reports `active` again.

Each trial does this twice, once per `Probe`: `/status` (the headline figure) and the
`tradeops_trading_state` gauge on `/metrics`. An agent answers after it has applied the change,
so each figure is an upper bound on the time the slowest agent took to observe the halt: it
includes up to one poll pause and one answer's round trip. `/status` costs the agent NATS and
(ledger) Postgres round trips per answer, so under load its figure carries more of the probe's
own cost than the gauge's does. A figure can be below zero when every agent saw the change
before the ack reached the publisher.

Run alone: `python -m ops.bench.killswitch [--trials N | --quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from nats.aio.client import Client as NATS

from bus import Credentials, Signer, connect
from contracts import Identity, TradingState
from ops.bench.e2e import bench_stack
from ops.control import set_trading_state
from ops.stack.embedded import EmbeddedStack

TRIALS = 100
TRIALS_QUICK = 30
WARMUP_TRIALS = 3
TARGET_P99_MS = 20.0
"""Kill acknowledged -> every agent halted, 99th percentile."""
POLL_INTERVAL_S = 0.001
STATE_TIMEOUT_S = 10.0
"""How long every agent may take to report a new state before the trial fails."""
REQUESTED_BY = "kill-switch benchmark"


class Probe(StrEnum):
    """How an agent's trading state is read."""

    STATUS = "status"
    """`GET /status`, its `trading_state` (what the brief and operators read)."""
    GAUGE = "gauge"
    """`GET /metrics`, the `tradeops_trading_state` gauge: cheaper to serve (no NATS or
    Postgres round trips), so the figure carries less of the probe's own cost."""


def health_urls(stack: EmbeddedStack) -> dict[Identity, str]:
    """Return each agent's health endpoint base URL on the stack."""
    settings = stack.settings
    return {
        agent: f"http://{settings.health_host}:{settings.health_ports[agent]}"
        for agent in stack.agents
    }


def _gauge_state(metrics: str, agent: Identity) -> str | None:
    for state in TradingState:
        if f'tradeops_trading_state{{agent="{agent}",state="{state}"}} 1.0' in metrics:
            return str(state)
    return None


class StatusPoller:
    """Reads the agents' reported trading state over kept-alive HTTP connections."""

    def __init__(
        self,
        urls: Mapping[Identity, str],
        http: aiohttp.ClientSession,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.urls = dict(urls)
        """Each agent's health endpoint base URL."""
        self.http = http
        self.interval_s = interval_s

    async def status(self, agent: Identity) -> dict[str, object]:
        """Return one agent's `/status` document."""
        async with self.http.get(f"{self.urls[agent]}/status") as resp:
            resp.raise_for_status()
            doc: dict[str, object] = await resp.json()
            return doc

    async def reported(self, agent: Identity, probe: Probe = Probe.STATUS) -> str | None:
        """Return the trading state `agent` reports through `probe`."""
        if probe is Probe.STATUS:
            return str((await self.status(agent))["trading_state"])
        async with self.http.get(f"{self.urls[agent]}/metrics") as resp:
            resp.raise_for_status()
            return _gauge_state(await resp.text(), agent)

    async def states(self) -> dict[Identity, str]:
        """Return every agent's trading state as its `/status` reports it."""
        docs = await asyncio.gather(*(self.status(a) for a in self.urls))
        return {a: str(d["trading_state"]) for a, d in zip(self.urls, docs, strict=True)}

    async def first_seen(
        self, agent: Identity, state: TradingState, probe: Probe = Probe.STATUS
    ) -> float:
        """Poll `agent` until it reports `state`; return when that answer was received."""
        while True:
            reported = await self.reported(agent, probe)
            received = time.perf_counter()
            if reported == state:
                return received
            await asyncio.sleep(self.interval_s)

    async def all_seen(
        self,
        state: TradingState,
        probe: Probe = Probe.STATUS,
        timeout_s: float = STATE_TIMEOUT_S,
    ) -> dict[Identity, float]:
        """Poll every agent concurrently until each reports `state`; return the receipt times."""
        try:
            async with asyncio.timeout(timeout_s):
                times = await asyncio.gather(*(self.first_seen(a, state, probe) for a in self.urls))
        except TimeoutError:
            states = await self.states()
            raise TimeoutError(
                f"not every agent reported {state} within {timeout_s:g}s: {states}"
            ) from None
        return dict(zip(self.urls, times, strict=True))


@dataclass(frozen=True)
class Flip:
    """One trading-state change as the agents reported it."""

    state: TradingState
    probe: Probe
    publish_to_ack_ms: float
    """From calling `set_trading_state` to its publish ack."""
    all_seen_ms: float
    """From the publish ack to the last agent's first answer with the new state."""
    last_agent: Identity
    """The agent that reported the new state last."""


async def timed_flip(
    nc: NATS,
    signer: Signer,
    poller: StatusPoller,
    state: TradingState,
    probe: Probe = Probe.STATUS,
) -> Flip:
    """Publish `state` as ops and time it until every agent reports it through `probe`."""
    watching = asyncio.create_task(poller.all_seen(state, probe))
    await asyncio.sleep(0)  # let the pollers send their first requests
    sent = time.perf_counter()
    await set_trading_state(nc, signer, state, reason=REQUESTED_BY, requested_by=REQUESTED_BY)
    acked = time.perf_counter()
    seen = await watching
    last_agent, last_at = max(seen.items(), key=lambda item: item[1])
    return Flip(state, probe, (acked - sent) * 1000, (last_at - acked) * 1000, last_agent)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class KillSwitchResult:
    """Every trial's kill and resume, as every agent reported them.

    Each trial kills and resumes twice: once read through `/status` (the headline figures) and
    once through the `/metrics` gauge.
    """

    agents: tuple[Identity, ...]
    poll_interval_ms: float
    flips: tuple[Flip, ...]

    def _ms(self, state: TradingState, probe: Probe) -> list[float]:
        return [f.all_seen_ms for f in self.flips if f.state is state and f.probe is probe]

    def p50(self, state: TradingState = TradingState.HALTED, probe: Probe = Probe.STATUS) -> float:
        return statistics.median(self._ms(state, probe))

    def p99(self, state: TradingState = TradingState.HALTED, probe: Probe = Probe.STATUS) -> float:
        return _pct(self._ms(state, probe), 0.99)

    @property
    def trials(self) -> int:
        return len(self._ms(TradingState.HALTED, Probe.STATUS))

    @property
    def p50_ms(self) -> float:
        """Kill ack -> every agent's /status says halted, median."""
        return self.p50()

    @property
    def p99_ms(self) -> float:
        """Kill ack -> every agent's /status says halted, 99th percentile."""
        return self.p99()

    @property
    def max_ms(self) -> float:
        return max(self._ms(TradingState.HALTED, Probe.STATUS))

    @property
    def ack_p50_ms(self) -> float:
        """set_trading_state called -> its publish ack, median over the kills."""
        return statistics.median(
            f.publish_to_ack_ms for f in self.flips if f.state is TradingState.HALTED
        )

    def slowest(self, probe: Probe = Probe.STATUS) -> Counter[Identity]:
        """How often each agent was the last to report `halted`."""
        return Counter(
            f.last_agent for f in self.flips if f.state is TradingState.HALTED and f.probe is probe
        )


async def measure(
    stack: EmbeddedStack, trials: int, poll_interval_s: float = POLL_INTERVAL_S
) -> KillSwitchResult:
    """Kill and resume `trials` times per probe on a running stack; it is left `active`."""
    certs = stack.settings.certs_dir
    creds = Credentials(Identity.OPS, certs)
    signer = Signer.from_file(Identity.OPS, creds.signing_key_file)
    nc = await connect(stack.layout.url, creds)
    flips: list[Flip] = []
    try:
        async with aiohttp.ClientSession() as http:
            poller = StatusPoller(health_urls(stack), http, poll_interval_s)
            await set_trading_state(nc, signer, TradingState.ACTIVE, REQUESTED_BY, REQUESTED_BY)
            await poller.all_seen(TradingState.ACTIVE)
            for n in range(WARMUP_TRIALS + trials):
                for probe in Probe:
                    for state in (TradingState.HALTED, TradingState.ACTIVE):
                        flip = await timed_flip(nc, signer, poller, state, probe)
                        if n >= WARMUP_TRIALS:
                            flips.append(flip)
    finally:
        await nc.close()
    return KillSwitchResult(tuple(stack.agents), poll_interval_s * 1000, tuple(flips))


async def run_killswitch_bench(trials: int) -> KillSwitchResult:
    """Start an embedded stack, measure `trials` kills (and resumes) per probe, stop it."""
    async with bench_stack() as stack:
        return await measure(stack, trials)


def summary(result: KillSwitchResult) -> str:
    """Return the result as a few readable lines."""
    halted, active = TradingState.HALTED, TradingState.ACTIVE
    verdict = "PASS" if result.p99_ms <= TARGET_P99_MS else "MISS"
    slowest = ", ".join(f"{a} {n}" for a, n in result.slowest().most_common())
    return "\n".join(
        [
            f"kill switch: {result.trials} trials, {len(result.agents)} agents, "
            f"polled every {result.poll_interval_ms:g} ms",
            f"kill ack -> all /status halted: p50 {result.p50_ms:.1f} ms, "
            f"p99 {result.p99_ms:.1f} ms, max {result.max_ms:.1f} ms "
            f"(target p99 <= {TARGET_P99_MS:.0f} ms: {verdict})",
            f"kill ack -> all gauges halted: p50 {result.p50(halted, Probe.GAUGE):.1f} ms, "
            f"p99 {result.p99(halted, Probe.GAUGE):.1f} ms",
            f"resume ack -> all /status active: p50 {result.p50(active):.1f} ms, "
            f"p99 {result.p99(active):.1f} ms",
            f"kill publish -> ack: p50 {result.ack_p50_ms:.1f} ms",
            f"last to report halted on /status: {slowest}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.bench.killswitch",
        description="Measure kill ack -> every agent halted on an embedded stack.",
    )
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--quick", action="store_true", help=f"{TRIALS_QUICK} trials")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    logging.getLogger("tradeops.bus").setLevel(logging.ERROR)
    result = asyncio.run(run_killswitch_bench(TRIALS_QUICK if args.quick else args.trials))
    print(summary(result))
    return 0  # a missed target is reported, not a failure (shared, noisy machines)


if __name__ == "__main__":
    raise SystemExit(main())
