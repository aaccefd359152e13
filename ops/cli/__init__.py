"""The `tradeops` command line: one module per command group."""

from ops.cli.deferred import skip_websocket_transport

skip_websocket_transport()  # before anything imports nats (see ops/cli/deferred.py)

from ops.cli.main import app, main  # noqa: E402

__all__ = ["app", "main"]
