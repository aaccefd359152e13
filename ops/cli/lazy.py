"""Command groups loaded on first use, so that `tradeops X` imports only what X needs.

Every command module imports its libraries (nats, pydantic, asyncpg, rich, faiss…) at its top;
importing them all costs more than a second, and a lookup such as `intent show ID` must answer
in a few hundred milliseconds. The root group therefore knows each command by name and one-line
summary only (`LazyCommand`), and imports the module that defines it when the command is run,
its own help is asked for, or the shell completes it. `tradeops --help` lists the summaries
without importing anything (click's "lazy loading subcommands" pattern, for typer apps).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import typer
import typer.main
from typer._click.exceptions import UsageError
from typer.core import TyperCommand

from ops.cli.errors import TradeopsGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a command of the root group is defined, and what `tradeops --help` says of it."""

    name: str
    """The command's name on the command line (`intent`, `up`)."""
    module: str
    """The module that defines it (`ops.cli.intent`)."""
    app: str
    """The module-level `typer.Typer` in `module`."""
    summary: str
    """The line `tradeops --help` lists: the command's own short help (a unit test checks)."""
    command: str | None = None
    """A top-level command of `app` (`up` of `stack_app`); None: `app` is the group `name`."""

    def load(self) -> Any:  # a typer click command (typer vendors click; it has no stubs)
        """Import the module and build the click command it defines."""
        sub_app = getattr(importlib.import_module(self.module), self.app)
        if not isinstance(sub_app, typer.Typer):
            raise TypeError(f"{self.module}.{self.app} is not a typer.Typer")
        group = typer.main.get_group(sub_app)
        cmd = group if self.command is None else group.commands[self.command]
        cmd.name = self.name
        return cmd


class LazyGroup(TradeopsGroup):
    """The root group: commands of `lazy` are imported when used, listed from their summaries."""

    lazy: tuple[LazyCommand, ...] = ()
    _listing = False

    def _spec(self, name: str) -> LazyCommand | None:
        return next((spec for spec in self.lazy if spec.name == name), None)

    def list_commands(self, ctx: Any) -> list[str]:
        eager = super().list_commands(ctx)
        return eager + [spec.name for spec in self.lazy if spec.name not in eager]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        spec = self._spec(cmd_name)
        if cmd is not None or spec is None:
            return cmd
        if self._listing:  # `tradeops --help`: the summary is all it shows
            return TyperCommand(spec.name, help=spec.summary, short_help=spec.summary)
        cmd = spec.load()
        self.commands[cmd_name] = cmd
        return cmd

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:  # typer suggests among loaded commands only: add the lazy
            if args and "Did you mean" not in exc.message:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    suggestions = ", ".join(repr(m) for m in matches)
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise
