"""The `tradeops` command line: the root app, with one sub-app per command group.

Each group is a module-level `typer.Typer` in its own module, added here with `add_typer` (a
named group such as `intent`, or unnamed for top-level commands such as `up`). The root group is
`TradeopsGroup` (`ops/cli/errors.py`): whatever a command raises becomes one line on stderr and
a documented exit code (`ops/cli/options.py`), never a traceback.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Annotated

import typer

from ops.cli.audit import audit_app
from ops.cli.certs import certs_app
from ops.cli.config import config_app
from ops.cli.control import control_app
from ops.cli.demo import demo_app
from ops.cli.dlq import dlq_app
from ops.cli.errors import TradeopsGroup
from ops.cli.intent import intent_app
from ops.cli.knowledge import knowledge_app
from ops.cli.logs import logs_app
from ops.cli.natsconf import nats_app
from ops.cli.options import exit_codes_epilog
from ops.cli.positions import positions_app
from ops.cli.provision import provision_app
from ops.cli.schemas import contracts_app
from ops.cli.stack import agent_app, stack_app
from ops.cli.streams import streams_app

app = typer.Typer(
    name="tradeops",
    cls=TradeopsGroup,
    help="AI-assisted trading operations on NATS JetStream.",
    epilog=exit_codes_epilog(),
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


# top-level commands, in the order `tradeops --help` lists them
for commands in (stack_app, positions_app, provision_app, control_app, demo_app, streams_app):
    app.add_typer(commands)
app.add_typer(logs_app)
# command groups
app.add_typer(certs_app, name="certs")
app.add_typer(config_app, name="config")
app.add_typer(contracts_app, name="contracts")
app.add_typer(nats_app, name="nats")
app.add_typer(agent_app, name="agent")
app.add_typer(intent_app, name="intent")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")


def _quiet_tls_close(record: logging.LogRecord) -> bool:
    # asyncio warns on every TLS connection closed by the peer; it says nothing actionable.
    return "eof_received" not in record.getMessage()


def main() -> None:
    # A one-shot command's stderr is its one error line: library warnings (a refused connect
    # retried, a closed TLS socket) stay quiet. `up` and `agent run` log at INFO themselves.
    logging.basicConfig(
        level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncio").addFilter(_quiet_tls_close)
    app()


if __name__ == "__main__":
    main()
