"""`tradeops streams [--json]`: stream contents and limits, durable consumers' backlogs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from agents.settings import load_settings
from contracts import Identity
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog, hint
from ops.client import connected
from ops.streams import StreamReport, collect_streams

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

streams_app = typer.Typer()


def size(n: int) -> str:
    """Bytes in binary units: `512 B`, `1.5 MiB`; `-` for no limit."""
    if n < 0:
        return "-"
    value = float(n)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def age(seconds: float) -> str:
    """A duration as an operator writes it: `30d`, `12h`, `90s`; `-` for none."""
    if seconds <= 0:
        return "-"
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span and seconds % span == 0:
            return f"{int(seconds // span)}{unit}"
    return f"{seconds:g}s"


def count(n: int) -> str:
    return "-" if n < 0 else str(n)


def render(reports: list[StreamReport], data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The streams as a table, each followed by its durable consumers."""
    head = (
        f"{'STREAM':<12} {'MESSAGES':>9} {'BYTES':>10} {'MAX BYTES':>10} {'USED':>5} "
        f"{'MAX AGE':>7} {'MAX MSGS':>9} {'MAX MSG':>9}  SEQ FIRST..LAST"
    )
    lines = [head]
    provision = hint("provision", data_dir)
    for r in reports:
        if r.missing:
            lines.append(f"{r.name:<12} MISSING: declared by the topology; {provision}")
            continue
        used = f"{r.bytes_used_pct:.0f}%" if r.bytes_used_pct is not None else "-"
        note = "" if r.in_topology else "  (not in the topology)"
        lines.append(
            f"{r.name:<12} {r.messages:>9} {size(r.bytes):>10} {size(r.max_bytes):>10} "
            f"{used:>5} {age(r.max_age_s):>7} {count(r.max_msgs):>9} "
            f"{size(r.max_msg_size):>9}  {r.first_seq}..{r.last_seq}{note}"
        )
        for c in r.consumers:
            who = f"{c.name} ({c.owner})" if c.owner else f"{c.name} (not in the topology)"
            if c.missing:
                lines.append(f"  consumer {who}: MISSING; {provision}")
                continue
            lines.append(
                f"  consumer {who}: pending {c.pending}, ack pending {c.ack_pending}, "
                f"redelivered {c.redelivered}, waiting {c.waiting}"
            )
    return "\n".join(lines)


@streams_app.command("streams", epilog=exit_codes_epilog(0, 1, 4, 5))
def streams(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Each stream's messages, bytes and limits, and each durable consumer's backlog.

    Exits 1 when a stream or consumer the topology declares is missing on the server."""
    settings = load_settings(data_dir)

    async def go() -> list[StreamReport]:
        async with connected(settings, Identity.OPS) as nc:
            return await collect_streams(nc.jetstream())

    reports = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps({"streams": [r.to_json() for r in reports]}, indent=2))
    else:
        typer.echo(render(reports, data_dir))
    missing = [r.name for r in reports if r.missing] + [
        f"{c.stream}/{c.name}" for r in reports for c in r.consumers if c.missing
    ]
    if missing:
        fail(
            f"missing on the server: {', '.join(missing)}; create them: "
            f"{hint('provision', data_dir)}",
            ExitCode.PROBLEMS,
        )


@streams_app.command("storage-metrics", epilog=exit_codes_epilog(0, 4, 5, 128))
def storage_metrics(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[
        str | None, typer.Option(help="Listen address; default the settings' health_host.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port; default [storage] metrics_port (9106).")
    ] = None,
) -> None:
    """Serve every stream's bytes, messages and limits at /metrics until stopped (as ops).

    The embedded stack serves these itself; run this where the agents run apart (compose)."""
    from ops.stack.signals import until_signalled  # noqa: PLC0415
    from ops.storage import serve  # noqa: PLC0415

    settings = load_settings(data_dir)
    where = (host or settings.health_host, port or settings.storage.metrics_port)

    async def go() -> None:
        exporter = await serve(
            settings.nats_servers(), settings.certs_dir, *where, settings.storage.alert_at_percent
        )
        typer.echo(f"serving stream storage metrics on http://{where[0]}:{where[1]}/metrics")
        try:
            await asyncio.Event().wait()
        finally:
            await exporter.stop()

    asyncio.run(until_signalled(go()))
