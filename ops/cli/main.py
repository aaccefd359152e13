"""The `tradeops` command line."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Annotated

import typer

from contracts.schema import export_schemas
from ops.cli.audit import register as register_audit
from ops.cli.certs import register as register_certs_revoke
from ops.cli.config import app as config_app
from ops.cli.control import register as register_control
from ops.cli.dlq import register as register_dlq
from ops.cli.intent import register as register_intent
from ops.cli.knowledge import register as register_knowledge
from ops.cli.logs import logs
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.cli.positions import read_ledger, render
from ops.cli.positions import register as register_ledger
from ops.cli.provision import register as register_provision
from ops.cli.stack import register as register_stack
from ops.cli.streams import streams
from ops.client import StackUnavailable
from ops.pki.certs import init_certs
from ops.pki.natsconf import (
    REFERENCE_CLUSTER,
    REFERENCE_LAYOUT,
    render_single_node,
    write_cluster_configs,
)

app = typer.Typer(
    name="tradeops",
    help="AI-assisted trading operations on NATS JetStream.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tradeops {importlib.metadata.version('tradeops')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """AI-assisted trading operations on NATS JetStream."""


certs_app = typer.Typer(
    help="Identities: the CA and one certificate per identity.", no_args_is_help=True
)
contracts_app = typer.Typer(help="The message contracts.", no_args_is_help=True)
nats_app = typer.Typer(help="nats-server configuration.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")
app.add_typer(contracts_app, name="contracts")
app.add_typer(nats_app, name="nats")


@certs_app.command("init")
def certs_init(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Create the CA, the server certificate, and each identity's certificate and signing key."""
    paths, created = init_certs(data_dir)
    if created:
        for path in created:
            typer.echo(f"created {path}")
    else:
        typer.echo(f"all identities already exist in {paths.certs_dir}; nothing overwritten")


@contracts_app.command("export")
def contracts_export(directory: Annotated[Path, typer.Argument(help="Output directory.")]) -> None:
    """Write one JSON Schema per message, for clients in any language."""
    for path in export_schemas(directory):
        typer.echo(str(path))


@nats_app.command("config")
def nats_config(
    out: Annotated[Path | None, typer.Option(help="Write here instead of printing.")] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(help="Write the 3-node cluster's nats-1.conf .. nats-3.conf into this dir."),
    ] = None,
) -> None:
    """Render the reference single-node configuration, or the cluster's (as committed in nats/)."""
    if cluster is not None:
        for path in write_cluster_configs(REFERENCE_CLUSTER, cluster):
            typer.echo(f"wrote {path}")
        return
    text = render_single_node(REFERENCE_LAYOUT)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}")


register_stack(app)
register_intent(app)
register_ledger(app)
register_knowledge(app)
register_dlq(app)
register_audit(app)
register_certs_revoke(certs_app)
register_provision(app)
app.add_typer(config_app, name="config")
app.command("logs")(logs)
app.command("streams")(streams)


async def _positions_text(database_url: str) -> str:
    return render(await read_ledger(database_url, None))


register_control(app, _positions_text)


def _quiet_tls_close(record: logging.LogRecord) -> bool:
    # asyncio warns on every TLS connection closed by the peer; it says nothing actionable.
    return "eof_received" not in record.getMessage()


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncio").addFilter(_quiet_tls_close)
    try:
        app()
    except StackUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
