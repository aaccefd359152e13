"""The `tradeops` command line: one module per command group."""

from ops.cli.main import app, main

__all__ = ["app", "main"]
