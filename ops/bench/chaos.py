"""Chaos: load the embedded stack at a steady rate while killing its parts; read every outcome.

`run_chaos(stack, plan)` submits `plan.rate_per_s` intents a second for `plan.duration_s` and
meanwhile SIGKILLs a random ready agent every `plan.kill_every_s` (the supervisor restarts it),
SIGKILLs nats-server once (the supervisor restarts it) and stops the embedded Postgres under the
ledger once for `plan.postgres_down_s`. The client retries each submission until the stream
acknowledges it, under the same `Nats-Msg-Id`. Then it waits until every intent has a terminal
outcome, and returns what the streams say (tests/chaos checks it).

Outcomes are read by `OutcomeLog` from the streams, trusting only events whose Ed25519 signature
is valid and whose signer is the agent that owns the subject (headers are not signed: the kind
comes from the subject and the intent id from the signed payload).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from bus.replay import StoredMsg, read_stream
from bus.signing import SignatureStatus, Verifier
from contracts import AGENTS, DeadLetter, OrderFilled
from contracts.kinds import (
    DEAD_LETTER,
    PIPELINE_KINDS,
    TERMINAL,
    TRAIL_STREAMS,
    kind_of,
    owners_of,
    unsigned_allowed,
)
from ops.stack.embedded import EmbeddedStack, http_ok
from ops.stack.natsd import wait_healthy
from ops.stack.scratch import OPEN_CASH_USD, OPEN_LIMITS, OPEN_PRICES, write_scratch_config

SCALE_ENV = "TRADEOPS_CHAOS_SCALE"
STARTING_CASH = {"paper-1": OPEN_CASH_USD}


@dataclass(frozen=True)
class ChaosPlan:
    """How hard to push and what to break."""

    rate_per_s: int
    duration_s: float
    kill_every_s: float
    nats_restart_at_s: float
    postgres_stop_at_s: float
    postgres_down_s: float
    settle_timeout_s: float
    seed: int = 11
    invalid_share: float = 0.02
    """Submissions that are not valid intents (dead-lettered)."""
    oversize_share: float = 0.03
    """Intents over the per-order maximum (rejected by the risk gate)."""
    duplicate_share: float = 0.03
    """Exact resubmissions of an earlier valid intent under a new `Nats-Msg-Id`."""


SCALES = {
    "full": ChaosPlan(300, 60.0, 4.0, 25.0, 40.0, 5.0, settle_timeout_s=600.0),
    "ci": ChaosPlan(100, 20.0, 4.0, 8.0, 13.0, 3.0, settle_timeout_s=240.0),
}


def plan_from_env(default: str = "full") -> ChaosPlan:
    """Return the plan named by `TRADEOPS_CHAOS_SCALE` (`full` or `ci`)."""
    name = os.environ.get(SCALE_ENV, default) or default
    if name not in SCALES:
        raise ValueError(f"{SCALE_ENV}={name!r}: expected one of {sorted(SCALES)}")
    return SCALES[name]


def write_chaos_config(data_dir: Path) -> Path:
    """Write the data dir's settings, which let most intents fill: the open universe with
    `STARTING_CASH`, a 100 ms feed, and prices not stale for 10 minutes (while parts are down)."""
    return write_scratch_config(
        data_dir,
        feed_interval_ms=100,
        limits={**OPEN_LIMITS, "stale_price_s": 600},
        accounts=STARTING_CASH,
        prices=OPEN_PRICES,
    )


# -- what the client submits -----------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One publish of the load: an intent (or a duplicate of one, or an invalid body)."""

    intent_id: str
    subject: str
    payload: bytes
    msg_id: str
    expect: str
    """`fill`, `rejected`, `dead_letter` or `duplicate`."""


def make_submissions(plan: ChaosPlan) -> list[Submission]:
    """Return the whole load, deterministic for the plan's seed."""
    rng = random.Random(plan.seed)
    out: list[Submission] = []
    intents: list[Submission] = []  # the valid ones: an invalid body is not de-duplicated
    for n in range(int(plan.rate_per_s * plan.duration_s)):
        roll = rng.random()
        if intents and roll < plan.duplicate_share:
            out.append(replace(rng.choice(intents), msg_id=f"duplicate-{n}", expect="duplicate"))
            continue
        symbol = "BTC-USD" if n % 2 else "ETH-USD"
        body: dict[str, str] = {
            "intent_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "account": "paper-1",
            "symbol": symbol,
            "side": "buy" if rng.random() < 0.55 else "sell",
            "quantity": "0.01" if symbol == "BTC-USD" else "0.1",
            "rationale": f"Rebalancing {symbol} toward its target weight, ticket {n}.",
        }
        expect = "fill"
        if roll < plan.duplicate_share + plan.invalid_share:
            body["side"], expect = "hold", "dead_letter"
        elif roll < plan.duplicate_share + plan.invalid_share + plan.oversize_share:
            body["quantity"], expect = "2000", "rejected"
        subject, payload = f"intent.submitted.{symbol}", json.dumps(body).encode()
        out.append(Submission(body["intent_id"], subject, payload, body["intent_id"], expect))
        if expect != "dead_letter":
            intents.append(out[-1])
    return out


async def _publish_until_acked(
    js: JetStreamContext, sub: Submission, retries: Counter[str]
) -> None:
    delay = 0.2
    while True:
        try:
            await js.publish(
                sub.subject, sub.payload, timeout=5.0, headers={"Nats-Msg-Id": sub.msg_id}
            )
            return
        except Exception as exc:  # no ack (outage, reconnect): the same msg id again
            retries[type(exc).__name__] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def submit_paced(
    js: JetStreamContext, subs: Sequence[Submission], rate_per_s: float, retries: Counter[str]
) -> None:
    """Start one publish every 1/rate seconds; return when every one is acknowledged."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i, sub in enumerate(subs):
        delay = start + i / rate_per_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_publish_until_acked(js, sub, retries)))
    await asyncio.gather(*tasks)


# -- what the streams say --------------------------------------------------------------------------


@dataclass
class OutcomeLog:
    """Every intent's signed events by kind, read incrementally from the outcome streams."""

    verifier: Verifier
    streams: tuple[str, ...] = TRAIL_STREAMS
    kinds: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reasons: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fills: list[OrderFilled] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    _next: dict[str, int] = field(default_factory=dict)

    async def poll(self, nc: NATS) -> None:
        """Read what was stored since the last poll."""
        for stream in self.streams:
            async for msg in read_stream(nc, stream, start_seq=self._next.get(stream, 1)):
                self._next[stream] = msg.seq + 1
                self._record(msg)

    def terminal(self, intent_id: str) -> int:
        return sum(self.kinds[intent_id][k] for k in TERMINAL)

    def _record(self, msg: StoredMsg) -> None:
        if unsigned_allowed(msg.subject):
            return  # client input (`intent.submitted.*`): unsigned by design
        status, signer = self.verifier.check(msg.subject, msg.data, msg.headers)
        if status is not SignatureStatus.VALID or signer not in owners_of(msg.subject):
            self.unverified.append(f"{msg.stream}#{msg.seq} {msg.subject}: {status} by {signer}")
            return
        kind = kind_of(msg.subject)
        if kind == DEAD_LETTER:
            letter = DeadLetter.model_validate_json(msg.data)
            self.dead_letters.append(letter)
            key = str(letter.intent_id or f"{letter.stream}#{letter.stream_seq}")
            self.kinds[key]["dead_letter"] += 1
            self.reasons[key].append(letter.reason)
            return
        if kind not in PIPELINE_KINDS:
            return  # the operator's own records
        body: dict[str, Any] = json.loads(msg.data)
        key = str(body["intent_id"])
        self.kinds[key][kind] += 1
        if kind == "risk.rejected":
            self.reasons[key] += [str(r) for r in body["reasons"]]
        elif kind == "order.rejected":
            self.reasons[key].append(str(body["reason"]))
        elif kind == "order.filled":
            self.fills.append(OrderFilled.model_validate(body))


# -- what chaos breaks -----------------------------------------------------------------------------


@dataclass
class Faults:
    """The faults injected, each with its time since the load started."""

    started: float
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        elapsed = asyncio.get_running_loop().time() - self.started
        self.notes.append(f"{elapsed:5.1f}s {text}")


async def kill_agents(
    stack: EmbeddedStack, every_s: float, until: float, rng: random.Random, faults: Faults
) -> None:
    """SIGKILL one ready agent every `every_s` until the loop time `until`.

    Only a ready agent is a candidate, so one that is still loading (the analyst's model takes
    seconds) is not killed again before it did any work.
    """
    loop = asyncio.get_running_loop()
    while loop.time() + every_s < until:
        await asyncio.sleep(every_s)
        ready = []
        for agent in AGENTS:
            comp = stack.components.get(str(agent))
            if comp is not None and await asyncio.to_thread(http_ok, f"{comp.health_url}/readyz"):
                ready.append(comp)
        if not ready:
            continue
        victim = rng.choice(ready)
        if victim.proc is not None and victim.proc.returncode is None:
            os.kill(victim.proc.pid, signal.SIGKILL)
            faults.note(f"SIGKILL {victim.name}")


async def restart_nats(stack: EmbeddedStack, faults: Faults) -> None:
    """SIGKILL nats-server; wait until the supervisor has it healthy again."""
    server = stack.components["nats-server"]
    before = server.restarts
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    faults.note("SIGKILL nats-server")
    async with asyncio.timeout(60):
        while server.restarts == before:  # noqa: ASYNC110 - the supervisor offers no event
            await asyncio.sleep(0.1)
    await wait_healthy(stack.layout, timeout_s=60)
    faults.note("nats-server healthy again (restarted by the supervisor)")


async def stop_postgres(stack: EmbeddedStack, down_s: float, faults: Faults) -> None:
    """Stop the embedded Postgres (fast shutdown) for `down_s` seconds, then start it again."""
    pg = getattr(stack, "_pg", None)
    if pg is None:
        faults.note("postgres is not embedded: not stopped")
        return
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # noqa: PLC0415
    from pgserver.utils import PostmasterInfo  # noqa: PLC0415

    socket_dir = pg.get_postmaster_info().socket_dir

    def run(*args: str) -> None:
        pg_ctl(list(args), pgdata=pg.pgdata, user=pg.system_user, timeout=60)

    await asyncio.to_thread(run, "-w", "-m", "fast", "stop")
    faults.note("postgres stopped")
    await asyncio.sleep(down_s)
    start = ("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pg.log), "start")
    await asyncio.to_thread(run, *start)
    pg._postmaster_info = PostmasterInfo.read_from_pgdata(pg.pgdata)  # so stop() stops this one
    faults.note("postgres started again")


async def _after(delay_s: float, action: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(delay_s)
    await action()


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class ChaosRun:
    """What was submitted, what the streams hold about it, and what was broken meanwhile."""

    plan: ChaosPlan
    submissions: list[Submission]
    log: OutcomeLog
    retries: Counter[str]
    """Publishes that got no acknowledgement and were sent again, by error."""
    faults: list[str]
    restarts: dict[str, int]
    load_s: float
    settle_s: float
    settled: bool

    @property
    def intent_ids(self) -> list[str]:
        return list(dict.fromkeys(s.intent_id for s in self.submissions))


async def run_chaos(
    stack: EmbeddedStack,
    client: NATS,
    ops: NATS,
    plan: ChaosPlan,
    progress: Callable[[str], None] = print,
) -> ChaosRun:
    """Run the load and the faults, then wait until every intent is settled (or the timeout)."""
    loop = asyncio.get_running_loop()
    subs = make_submissions(plan)
    log = OutcomeLog(Verifier.from_dir(stack.settings.certs_dir))
    retries: Counter[str] = Counter()
    started = loop.time()
    faults = Faults(started)
    await asyncio.gather(
        submit_paced(client.jetstream(), subs, plan.rate_per_s, retries),
        kill_agents(
            stack, plan.kill_every_s, started + plan.duration_s, random.Random(plan.seed), faults
        ),
        _after(plan.nats_restart_at_s, lambda: restart_nats(stack, faults)),
        _after(plan.postgres_stop_at_s, lambda: stop_postgres(stack, plan.postgres_down_s, faults)),
    )
    load_s = loop.time() - started
    progress(f"chaos: load done in {load_s:.1f}s; waiting for every outcome")
    ids = list(dict.fromkeys(s.intent_id for s in subs))
    settle_deadline = loop.time() + plan.settle_timeout_s
    pending = len(ids)
    while pending and loop.time() < settle_deadline:
        try:
            await log.poll(ops)
        except Exception as exc:  # a poll during a reconnect: try again
            progress(f"chaos: poll failed ({exc!r})")
        pending = sum(1 for i in ids if not log.terminal(i))
        if pending:
            progress(f"chaos: {pending} of {len(ids)} intents not settled yet")
            await asyncio.sleep(3.0)
    await asyncio.sleep(3.0)  # a late duplicate outcome would show up now
    await log.poll(ops)
    restarts = {name: c.restarts for name, c in stack.components.items()}
    settle_s = loop.time() - started - load_s
    return ChaosRun(plan, subs, log, retries, faults.notes, restarts, load_s, settle_s, not pending)
