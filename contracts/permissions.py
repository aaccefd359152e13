"""Least-privilege grants per identity, derived from the topology (rendered into nats-server)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts import subjects as s
from contracts import topology as t
from contracts.types import AGENTS, Identity


@dataclass(frozen=True)
class Grant:
    """What one identity may publish and subscribe to."""

    identity: Identity
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def _direct_get(stream: str) -> tuple[str, ...]:
    return (f"$JS.API.DIRECT.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>")


def _agent_grant(agent: Identity) -> Grant:
    owned = t.consumers_of(agent)
    publish: list[str] = [*t.OUTPUTS.get(agent, ()), s.dead_letters(agent)]
    for c in owned:
        publish += [
            f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}",
            f"$JS.ACK.{c.stream}.{c.durable}.>",
            f"$JS.API.CONSUMER.INFO.{c.stream}.{c.durable}",
        ]
        if c.pinned_group:  # a restarted agent takes the pin over at once
            publish.append(f"$JS.API.CONSUMER.UNPIN.{c.stream}.{c.durable}")
    readable = {c.stream for c in owned if c.stream != t.ADVISORIES} | {t.CONTROL}
    if t.FOLLOWS.get(agent):
        readable.add(t.MARKET)
    readable |= set(t.DIRECT_READS.get(agent, ()))
    for name in sorted(readable):
        publish += _direct_get(name)
    for kv in t.KV_BUCKETS:
        if agent in kv.writers:
            publish += [f"$KV.{kv.bucket}.>", f"$JS.API.STREAM.INFO.{kv.stream}"]
            publish += _direct_get(kv.stream)
    subscribe = [f"{s.inbox_prefix(agent)}.>", "control.>", *t.FOLLOWS.get(agent, ())]
    return Grant(agent, tuple(publish), tuple(subscribe))


def grants() -> tuple[Grant, ...]:
    """Return the grant of every identity."""
    ops = Grant(Identity.OPS, (">",), (">",))
    client = Grant(
        Identity.CLIENT,
        (*t.OUTPUTS[Identity.CLIENT], *t.REQUESTS[Identity.CLIENT]),
        (f"{s.inbox_prefix(Identity.CLIENT)}.>",),
    )
    return (ops, client, *(_agent_grant(a) for a in AGENTS))


def grant_of(identity: Identity) -> Grant:
    """Return the grant of one identity."""
    return next(g for g in grants() if g.identity is identity)
