"""`tradeops nats config`: the reference nats-server configurations (as committed in nats/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops.cli.options import exit_codes_epilog
from ops.pki.natsconf import (
    REFERENCE_CLUSTER,
    REFERENCE_LAYOUT,
    render_single_node,
    write_cluster_configs,
)

nats_app = typer.Typer(help="nats-server configuration.", no_args_is_help=True)


@nats_app.command("config", epilog=exit_codes_epilog(0, 5))
def nats_config(
    out: Annotated[
        Path | None, typer.Option(help="Write here instead of printing.", dir_okay=False)
    ] = None,
    cluster: Annotated[
        Path | None,
        typer.Option(
            help="Write the 3-node cluster's nats-1.conf .. nats-3.conf into this dir.",
            file_okay=False,
        ),
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
