"""`tradeops provision`: create or update the topology on a running NATS (compose's one-shot)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import nats.errors
import typer
from nats.js.errors import Error as JetStreamError

from agents.settings import Settings, load_settings
from bus import ProvisionReport, provision
from contracts import Identity
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, exit_codes_epilog
from ops.client import StackUnreachable, connected, stack_nats_url

log = logging.getLogger("tradeops.provision")

RETRY_EVERY_S = 1.0
ATTEMPT_TIMEOUT_S = 3.0

# What a cluster still electing its leaders, or a server not yet listening, answers with.
NOT_YET = (StackUnreachable, OSError, TimeoutError, nats.errors.Error, JetStreamError)


async def provision_when_ready(
    settings: Settings, replicas: int, timeout_s: float
) -> ProvisionReport:
    """Connect as ops and provision; retry until the servers and JetStream answer.

    Gives up after `timeout_s` whatever the servers do (refuse, accept and never answer, elect
    leaders forever) with `StackUnreachable` naming the last error. Missing certificates fail
    at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: BaseException | None = None
    while (left := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(left):
                async with connected(
                    settings, Identity.OPS, timeout_s=min(ATTEMPT_TIMEOUT_S, left)
                ) as nc:
                    return await provision(nc.jetstream(), replicas, settings.storage)
        except NOT_YET as exc:
            last = exc
            log.info("not provisioned yet (%s); retrying", exc)
        await asyncio.sleep(min(RETRY_EVERY_S, max(deadline - loop.time(), 0)))
    text = last.reason if isinstance(last, StackUnreachable) else str(last or "")
    why = f" (last: {' '.join(text.split())[:200]})" if text else ""
    raise StackUnreachable(
        f"could not provision on {stack_nats_url(settings)} within {timeout_s:g}s{why}; check "
        f"that the servers run: `tradeops status --data-dir {settings.data_dir}`"
    )


provision_app = typer.Typer()


@provision_app.command("provision", epilog=exit_codes_epilog(0, 4, 5))
def provision_command(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    replicas: Annotated[
        int | None,
        typer.Option(min=1, help="Stream replicas; default TRADEOPS_STREAM_REPLICAS (settings)."),
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the servers.")
    ] = 120.0,
) -> None:
    """Create or update every stream, consumer and KV bucket, as ops (idempotent).

    Retries until the servers answer; exits 4 after --timeout seconds when they do not."""
    settings = load_settings(Path(data_dir))
    count = settings.stream_replicas if replicas is None else replicas
    report = asyncio.run(provision_when_ready(settings, count, timeout_s))
    typer.echo(
        f"provisioned at {count} replica(s): {len(report.created)} created, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
    )
    for stale in report.stale:
        typer.echo(f"not in the topology: {stale}; drain or delete it", err=True)
