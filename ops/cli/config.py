"""`tradeops config show | init`: the effective settings, and a commented settings file."""

from __future__ import annotations

import json
import os
import tomllib
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from agents.settings import Settings, load_settings
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.config import FILE_NAME, effective, render_effective, template

app = typer.Typer(help="The settings: what is in effect, and a file to start from.")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load(data_dir: DataDir) -> Settings:
    try:
        return load_settings(data_dir)
    except tomllib.TOMLDecodeError as exc:
        _fail(f"{data_dir / FILE_NAME} is not valid TOML: {exc}", 2)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        _fail(f"settings: {where}: {first['msg']}{more}", 2)


@app.command("show")
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


@app.command("init")
def init(
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write <data-dir>/tradeops.toml: every setting at its default, each one explained."""
    path = data_dir / FILE_NAME
    if path.exists() and not force:
        _fail(f"{path} already exists; --force overwrites it", 1)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(template())
    tmp.replace(path)
    typer.echo(f"wrote {path}")
