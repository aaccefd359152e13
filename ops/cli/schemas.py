"""`tradeops contracts export`: one JSON Schema per message, for clients in any language."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contracts.schema import export_schemas
from ops.cli.options import exit_codes_epilog

contracts_app = typer.Typer(help="The message contracts.", no_args_is_help=True)


@contracts_app.command("export", epilog=exit_codes_epilog(0, 5))
def contracts_export(
    directory: Annotated[Path, typer.Argument(help="Output directory.", file_okay=False)],
) -> None:
    """Write one JSON Schema per message, for clients in any language."""
    for path in export_schemas(directory):
        typer.echo(str(path))
