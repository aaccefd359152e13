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
from bus import Credentials, ProvisionReport, connect, provision
from contracts import Identity
from ops.cli.options import DEFAULT_DATA_DIR, DataDir

log = logging.getLogger("tradeops.provision")

RETRY_EVERY_S = 1.0

# What a cluster still electing its leaders, or a server not yet listening, answers with.
NOT_YET = (OSError, TimeoutError, nats.errors.Error, JetStreamError)


async def provision_when_ready(
    settings: Settings, replicas: int, timeout_s: float
) -> ProvisionReport:
    """Connect as ops and provision; retry until the servers and JetStream answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    credentials = Credentials(Identity.OPS, settings.certs_dir)
    credentials.ssl_context()  # missing or unreadable certificates: fail now, not after retries
    while True:
        try:
            nc = await connect(
                settings.nats_servers(),
                credentials,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout_s=3.0,
            )
            try:
                return await provision(nc.jetstream(), replicas=replicas)
            finally:
                await nc.close()
        except NOT_YET as exc:
            if loop.time() + RETRY_EVERY_S > deadline:
                raise TimeoutError(
                    f"could not provision on {', '.join(settings.nats_servers())} within "
                    f"{timeout_s:.0f}s (last error: {exc!r}); check that the servers run and "
                    "that the ops certificate is in the data dir"
                ) from exc
            log.info("not provisioned yet (%r); retrying", exc)
            await asyncio.sleep(RETRY_EVERY_S)


def register(app: typer.Typer) -> None:
    """Add `provision` to `app`."""

    @app.command("provision")
    def provision_command(
        data_dir: DataDir = DEFAULT_DATA_DIR,
        replicas: Annotated[
            int | None,
            typer.Option(help="Stream replicas; default TRADEOPS_STREAM_REPLICAS (settings)."),
        ] = None,
        timeout_s: Annotated[
            float, typer.Option("--timeout", help="Seconds to wait for the servers.")
        ] = 120.0,
    ) -> None:
        """Create or update every stream, consumer and KV bucket, as ops (idempotent)."""
        settings = load_settings(Path(data_dir))
        count = settings.stream_replicas if replicas is None else replicas
        try:
            report = asyncio.run(provision_when_ready(settings, count, timeout_s))
        except TimeoutError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        typer.echo(
            f"provisioned at {count} replica(s): {len(report.created)} created, "
            f"{len(report.updated)} updated, {len(report.unchanged)} unchanged"
        )
        for stale in report.stale:
            typer.echo(f"not in the topology: {stale}; drain or delete it", err=True)
