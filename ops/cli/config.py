"""`tradeops config show | init`: the effective settings, and a commented settings file."""

from __future__ import annotations

import json
import os
import tomllib
from typing import Annotated

import typer
from pydantic import ValidationError

from agents.settings import Settings, load_settings
from ops.cli.errors import fail, validation_message
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog
from ops.config import FILE_NAME, effective, render_effective, template

config_app = typer.Typer(
    help="The settings: what is in effect, and a file to start from.", no_args_is_help=True
)


def _load(data_dir: DataDir) -> Settings:
    try:
        return load_settings(data_dir)
    except tomllib.TOMLDecodeError as exc:
        fail(f"{data_dir / FILE_NAME} is not valid TOML: {exc}", ExitCode.SETUP)
    except ValidationError as exc:
        fail(validation_message(exc, "settings"), ExitCode.SETUP)


@config_app.command("show", epilog=exit_codes_epilog(0, 5))
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The effective settings: defaults < TOML < environment, sources marked, secrets hidden.

    Each value not at its default is marked with where it came from (the data dir's
    tradeops.toml, or a TRADEOPS_* variable); API keys and URL passwords are redacted."""
    settings = _load(data_dir)
    if as_json:
        typer.echo(json.dumps(effective(settings, os.environ), indent=2))
    else:
        typer.echo(render_effective(settings, os.environ), nl=False)


@config_app.command("init", epilog=exit_codes_epilog(0, 1, 5))
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write <data-dir>/tradeops.toml: every setting at its default, each one explained."""
    path = data_dir / FILE_NAME
    if path.exists() and not force:
        fail(f"{path} already exists; --force overwrites it", ExitCode.PROBLEMS)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(template())
    tmp.replace(path)
    typer.echo(f"wrote {path}")
