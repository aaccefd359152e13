"""The `tradeops` command line: the root app, with one sub-app per command group.

Each group is a module-level `typer.Typer` in its own module, named here in `COMMANDS` (a
named group such as `intent`, or a command of an unnamed one for top-level commands such as
`up`) and imported only when it is used (`ops/cli/lazy.py`): `tradeops --version`, `--help` and
`intent show ID` pay for no library they do not use. The root group is a `TradeopsGroup`
(`ops/cli/errors.py`): whatever a command raises becomes one line on stderr and a documented
exit code (`ops/cli/options.py`), never a traceback.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ops.cli.lazy import LazyCommand, LazyGroup
from ops.cli.options import exit_codes_epilog

COMMANDS: tuple[LazyCommand, ...] = (
    # top-level commands, in the order `tradeops --help` lists them
    LazyCommand(
        "up",
        "ops.cli.stack",
        "stack_app",
        "Start nats-server, Postgres and every agent on this machine.",
        command="up",
    ),
    LazyCommand(
        "down",
        "ops.cli.stack",
        "stack_app",
        "Stop the stack of the data dir: agents drain, then nats-server and Postgres stop.",
        command="down",
    ),
    LazyCommand(
        "status",
        "ops.cli.stack",
        "stack_app",
        "Show the NATS URL, the database, each component and the trading state.",
        command="status",
    ),
    LazyCommand(
        "positions",
        "ops.cli.positions",
        "positions_app",
        "Show positions (quantity, average cost, realized P&L) and cash, from the ledger.",
        command="positions",
    ),
    LazyCommand(
        "provision",
        "ops.cli.provision",
        "provision_app",
        "Create or update every stream, consumer and KV bucket, as ops (idempotent).",
        command="provision",
    ),
    LazyCommand(
        "kill",
        "ops.cli.control",
        "control_app",
        "Halt all trading: nothing is approved or executed until `tradeops resume`.",
        command="kill",
    ),
    LazyCommand(
        "resume", "ops.cli.control", "control_app", "Resume normal trading.", command="resume"
    ),
    LazyCommand(
        "reduce",
        "ops.cli.control",
        "control_app",
        "Allow only orders that reduce an existing position.",
        command="reduce",
    ),
    LazyCommand(
        "demo",
        "ops.cli.demo",
        "demo_app",
        "Start the embedded stack, run a scripted scenario, print chains and positions, stop.",
        command="demo",
    ),
    LazyCommand(
        "streams",
        "ops.cli.streams",
        "streams_app",
        "Each stream's messages, bytes and limits, and each durable consumer's backlog.",
        command="streams",
    ),
    LazyCommand(
        "storage-metrics",
        "ops.cli.streams",
        "streams_app",
        "Serve every stream's bytes, messages and limits at /metrics until stopped (as ops).",
        command="storage-metrics",
    ),
    LazyCommand(
        "logs",
        "ops.cli.logs",
        "logs_app",
        "The stack's process logs, from the data dir.",
        command="logs",
    ),
    # command groups
    LazyCommand(
        "certs",
        "ops.cli.certs",
        "certs_app",
        "Identities: the CA and one certificate per identity.",
    ),
    LazyCommand(
        "config",
        "ops.cli.config",
        "config_app",
        "The settings: what is in effect, and a file to start from.",
    ),
    LazyCommand("contracts", "ops.cli.schemas", "contracts_app", "The message contracts."),
    LazyCommand("nats", "ops.cli.natsconf", "nats_app", "nats-server configuration."),
    LazyCommand(
        "agent", "ops.cli.stack", "agent_app", "Run one agent (compose and scale-out use this)."
    ),
    LazyCommand("intent", "ops.cli.intent", "intent_app", "Submit trade intents and follow them."),
    LazyCommand(
        "knowledge",
        "ops.cli.knowledge",
        "knowledge_app",
        "The firm's documents and the analyst's retrieval index over them.",
    ),
    LazyCommand(
        "dlq",
        "ops.cli.dlq",
        "dlq_app",
        "Dead letters: list, show, retry (original or repaired bytes), purge.",
    ),
    LazyCommand(
        "audit",
        "ops.cli.audit",
        "audit_app",
        "Replay the streams: an intent's trail; signatures, chains and the ledger.",
    ),
)
"""Every command of the root group, imported only when it runs (`ops/cli/lazy.py`)."""


class RootGroup(LazyGroup):
    lazy = COMMANDS


app = typer.Typer(
    name="tradeops",
    cls=RootGroup,
    help="AI-assisted trading operations on NATS JetStream.",
    epilog=exit_codes_epilog(),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        import importlib.metadata  # noqa: PLC0415  (only here: it costs a quarter of start-up)

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
