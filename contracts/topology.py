"""The topology as data: streams, durable consumers and KV buckets, with their owners."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts import subjects as s
from contracts.intent import MAX_SUBMISSION_BYTES
from contracts.types import Identity


class Retention(StrEnum):
    LIMITS = "limits"
    WORK_QUEUE = "workqueue"
    INTEREST = "interest"


class Storage(StrEnum):
    FILE = "file"
    MEMORY = "memory"


@dataclass(frozen=True)
class StreamSpec:
    """One JetStream stream."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention = Retention.LIMITS
    storage: Storage = Storage.FILE
    duplicate_window_s: float = 120.0
    max_age_s: float = 0.0
    max_msgs_per_subject: int = -1
    max_msg_size: int = -1
    """The largest message (headers included) the stream stores; larger publishes are refused."""
    replicas: int = 1
    description: str = ""


@dataclass(frozen=True)
class ConsumerSpec:
    """One durable pull consumer and the agent that owns it."""

    stream: str
    durable: str
    owner: Identity
    filter_subject: str
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    max_ack_pending: int = 5000
    backoff_s: tuple[float, ...] = (0.25, 1.0, 4.0, 15.0)
    """Delays of the runtime's nak by delivery attempt (the last repeats)."""
    pinned_group: str | None = None
    """Serve one client at a time (priority policy `pinned_client`), named by this group.

    Every message it delivers then carries a `Nats-Pin-Id` header. A stored message with neither
    body nor headers would otherwise reach the consumer's owner as a "nil" message, which ends
    the cross-account mapping of its pull request (nats-server#3180): the rest of that pull would
    be dropped on the way and wait out the ack wait. Needed where clients write the stream.
    """
    pin_ttl_s: float = 10.0
    """A pinned client that sends no pull request for this long loses the pin."""


@dataclass(frozen=True)
class KvSpec:
    """One KV bucket and the identities that write it."""

    bucket: str
    writers: tuple[Identity, ...]
    history: int = 1
    description: str = ""

    @property
    def stream(self) -> str:
        return f"KV_{self.bucket}"


SUBMISSIONS = "SUBMISSIONS"
INTENTS = "INTENTS"
RISK = "RISK"
ORDERS = "ORDERS"
LEDGER = "LEDGER"
MARKET = "MARKET"
CONTROL = "CONTROL"
DLQ = "DLQ"
ADVISORIES = "ADVISORIES"

STREAMS: tuple[StreamSpec, ...] = (
    # INTENTS first: a store provisioned before SUBMISSIONS existed had INTENTS on `intent.>`,
    # which must narrow before SUBMISSIONS can take `intent.submitted.>`.
    StreamSpec(
        INTENTS,
        (f"{s.INTENT_ACCEPTED}.>", f"{s.INTENT_ANALYZED}.>"),
        description="accepted and analyzed intents",
    ),
    # Client submissions have a stream of their own: a client's `Nats-Msg-Id` is de-duplicated
    # only against other submissions, never against the (derivable) ids of agents' events.
    StreamSpec(
        SUBMISSIONS,
        (f"{s.INTENT_SUBMITTED}.>",),
        max_msg_size=MAX_SUBMISSION_BYTES,
        description="intents as clients submitted them",
    ),
    StreamSpec(RISK, ("risk.>",), description="risk gate decisions"),
    StreamSpec(ORDERS, ("order.>",), description="fills and executor rejections"),
    StreamSpec(LEDGER, ("ledger.>",), description="ledger postings"),
    StreamSpec(
        MARKET,
        ("market.>",),
        max_age_s=7 * 24 * 3600.0,
        max_msgs_per_subject=100_000,
        description="market ticks",
    ),
    StreamSpec(CONTROL, ("control.>",), description="trading-state changes by ops"),
    StreamSpec(DLQ, ("dlq.>",), description="dead letters, one subject per agent"),
    StreamSpec(
        ADVISORIES,
        (f"{s.MAX_DELIVERIES_ADVISORY}.>",),
        max_age_s=30 * 24 * 3600.0,
        description="the server's max-deliveries advisories, kept so none is missed",
    ),
)

CONSUMERS: tuple[ConsumerSpec, ...] = (
    # `intent.submitted.>`, not `.*`: a submission on a malformed subject (a literal `>` token,
    # extra tokens) must reach the ingestor and be dead-lettered, not sit unseen in the stream.
    ConsumerSpec(
        SUBMISSIONS,
        "ingestor",
        Identity.INGESTOR,
        f"{s.INTENT_SUBMITTED}.>",
        pinned_group="intake",
    ),
    # Reviews wait on a model (~1 s, up to its timeout): the analyst sends in-progress acks for
    # what it holds and fetches only what its window of calls can review in half the ack wait.
    # The server's own bound across replicas: 2,048 unacknowledged intents, 8 s of work for
    # 256 calls of 1 s, inside the ack wait even at 3 s a call.
    ConsumerSpec(
        INTENTS,
        "analyst",
        Identity.ANALYST,
        s.intent_events(s.INTENT_ACCEPTED),
        ack_wait_s=60.0,
        max_ack_pending=2048,
    ),
    ConsumerSpec(INTENTS, "risk", Identity.RISK, s.intent_events(s.INTENT_ANALYZED)),
    ConsumerSpec(ORDERS, "risk-orders", Identity.RISK, "order.>"),
    ConsumerSpec(RISK, "executor", Identity.EXECUTOR, s.intent_events(s.RISK_APPROVED)),
    # A fill must never be dead-lettered because Postgres was down: retry until it is back
    # (a fill the ledger cannot book is rejected explicitly and dead-lettered by the agent).
    ConsumerSpec(
        ORDERS, "ledger", Identity.LEDGER, s.intent_events(s.ORDER_FILLED), max_deliver=-1
    ),
)


def dead_letter_consumer(spec: ConsumerSpec) -> ConsumerSpec:
    """Return the consumer on ADVISORIES that feeds `spec`'s exhausted messages to its owner."""
    return ConsumerSpec(
        ADVISORIES,
        f"{spec.durable}-exhausted",
        spec.owner,
        s.max_deliveries_advisory(spec.stream, spec.durable),
    )


DEAD_LETTER_CONSUMERS: tuple[ConsumerSpec, ...] = tuple(dead_letter_consumer(c) for c in CONSUMERS)
ALL_CONSUMERS: tuple[ConsumerSpec, ...] = CONSUMERS + DEAD_LETTER_CONSUMERS

KV_BUCKETS: tuple[KvSpec, ...] = (
    KvSpec("intents", (Identity.INGESTOR,), description="intent ids seen: de-duplication"),
    KvSpec("orders", (Identity.EXECUTOR,), description="orders recorded before the broker call"),
)

# What each identity publishes (besides `dlq.<itself>`), and the core subjects it follows.
OUTPUTS: dict[Identity, tuple[str, ...]] = {
    Identity.CLIENT: (s.every(s.INTENT_SUBMITTED),),
    Identity.INGESTOR: (s.intent_events(s.INTENT_ACCEPTED), s.every(s.MARKET_TICK)),
    Identity.ANALYST: (s.intent_events(s.INTENT_ANALYZED),),
    Identity.RISK: (s.intent_events(s.RISK_APPROVED), s.intent_events(s.RISK_REJECTED)),
    Identity.EXECUTOR: (s.intent_events(s.ORDER_FILLED), s.intent_events(s.ORDER_REJECTED)),
    Identity.LEDGER: (s.intent_events(s.LEDGER_POSTED),),
}
# Core requests an identity may send, answered by an ops service (never stored in a stream).
REQUESTS: dict[Identity, tuple[str, ...]] = {
    Identity.CLIENT: (s.INTENT_OUTCOME,),
}
FOLLOWS: dict[Identity, tuple[str, ...]] = {
    Identity.INGESTOR: (s.every(s.MARKET_TICK),),
    Identity.RISK: (s.every(s.MARKET_TICK),),
    Identity.EXECUTOR: (s.every(s.MARKET_TICK),),
}
# Streams an identity may read single messages from (direct get): its prices and the trading state.
DIRECT_READS: dict[Identity, tuple[str, ...]] = {
    Identity.INGESTOR: (MARKET,),
    Identity.ANALYST: (INTENTS,),
    Identity.RISK: (MARKET, INTENTS, RISK, ORDERS),
    Identity.EXECUTOR: (MARKET, RISK),
    Identity.LEDGER: (ORDERS,),
}


def consumer(durable: str) -> ConsumerSpec:
    """Return the consumer spec named `durable`."""
    for spec in ALL_CONSUMERS:
        if spec.durable == durable:
            return spec
    raise KeyError(f"no consumer named {durable!r}; known: {[c.durable for c in ALL_CONSUMERS]}")


def consumers_of(owner: Identity) -> tuple[ConsumerSpec, ...]:
    """Return every consumer that `owner` reads, work consumers first."""
    return tuple(c for c in ALL_CONSUMERS if c.owner is owner)


def stream(name: str) -> StreamSpec:
    """Return the stream spec named `name`."""
    for spec in STREAMS:
        if spec.name == name:
            return spec
    raise KeyError(f"no stream named {name!r}")
