"""`tradeops intent submit | show | list | watch`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated

import typer
from pydantic import ValidationError

from agents.settings import Settings, load_settings
from bus import Verifier
from contracts import Identity, OrderType, Side, SubmitIntent
from ops.audit.trail import IntentTrail, canonical_intent_id, find_trail
from ops.cli.errors import fail, validation_message
from ops.cli.intent_list import intent_list, intent_watch
from ops.cli.options import (
    DEFAULT_DATA_DIR,
    WAIT_EXIT,
    AsJson,
    DataDir,
    ExitCode,
    exit_codes_epilog,
    hint,
)
from ops.cli.render import render_trail
from ops.client import CONNECT_TIMEOUT_S, connected, submit, wait_outcome

intent_app = typer.Typer(help="Submit trade intents and follow them.", no_args_is_help=True)
intent_app.command("list", epilog=exit_codes_epilog(0, 2, 4, 5))(intent_list)
intent_app.command("watch", epilog=exit_codes_epilog(0, 4, 5))(intent_watch)


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "none configured"


def check_tradable(intent: SubmitIntent, settings: Settings) -> None:
    """Refuse, before anything is sent, what the stack's ingestor would dead-letter as unknown."""
    if settings.instrument(intent.symbol) is None:
        fail(
            f"unknown symbol {intent.symbol}; tradable: "
            f"{_known([i.symbol for i in settings.instruments])} (settings of {settings.data_dir})",
            ExitCode.USAGE,
        )
    if settings.account(intent.account) is None:
        fail(
            f"unknown account {intent.account!r}; accounts: "
            f"{_known([a.name for a in settings.accounts])} (settings of {settings.data_dir})",
            ExitCode.USAGE,
        )


def _intent(body: dict[str, object]) -> SubmitIntent:
    try:
        return SubmitIntent.model_validate_json(
            json.dumps({k: v for k, v in body.items() if v is not None})
        )
    except ValidationError as exc:
        fail(validation_message(exc, "intent"), ExitCode.USAGE)


@intent_app.command("submit", epilog=exit_codes_epilog(0, 2, 4, 5, 10, 11, 12, 13))
def intent_submit(
    symbol: Annotated[str, typer.Argument(help="A configured symbol, e.g. AAPL or btc-usd.")],
    side: Annotated[Side, typer.Argument(case_sensitive=False, help="buy or sell.")],
    quantity: Annotated[str, typer.Argument(help="Units, a decimal greater than zero.")],
    limit: Annotated[str | None, typer.Option("--limit", help="Limit price (limit order).")] = None,
    account: Annotated[str, typer.Option(help="Trading account.")] = "paper-1",
    intent_id: Annotated[str | None, typer.Option("--id", help="Idempotency key (UUID).")] = None,
    rationale: Annotated[str | None, typer.Option(help="Free text for the analyst.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the terminal outcome.")] = False,
    timeout_s: Annotated[
        float,
        typer.Option("--timeout", min=0.1, help="Seconds for the stack to answer (and --wait)."),
    ] = 30.0,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Publish a trade intent as the client identity; print its id.

    The symbol and account are checked against the data dir's settings first. With --wait, the
    exit code is the outcome: 0 filled, 10 rejected, 11 dead-lettered, 12 no outcome within
    --timeout, 13 its dead letter was retried."""
    intent = _intent(
        {
            "symbol": symbol.strip().upper(),
            "side": side,
            "quantity": quantity.strip(),
            "account": account,
            "order_type": OrderType.LIMIT if limit else OrderType.MARKET,
            "limit_price": limit,
            "rationale": rationale,
            "intent_id": intent_id,
        }
    )
    settings = load_settings(data_dir)
    check_tradable(intent, settings)
    connect_s = min(timeout_s, CONNECT_TIMEOUT_S)

    async def go() -> IntentTrail | uuid.UUID:
        async with connected(settings, Identity.CLIENT, timeout_s=connect_s) as nc:
            try:
                async with asyncio.timeout(timeout_s):
                    iid = await submit(nc, intent)
            except TimeoutError:
                fail(
                    f"no publish acknowledgement within {timeout_s:g}s: is JetStream up? "
                    f"{hint('status', data_dir)}",
                    ExitCode.UNREACHABLE,
                )
        typer.echo(str(iid))
        if not wait:
            return iid
        async with connected(settings, Identity.OPS, timeout_s=connect_s) as ops:
            return await wait_outcome(ops, iid, settings.certs_dir, timeout_s)

    result = asyncio.run(go())
    if not isinstance(result, IntentTrail):
        return
    typer.echo(render_trail(result))
    code = WAIT_EXIT.get(result.outcome)
    if code is None:
        fail(
            f"no outcome within {timeout_s:g}s ({result.outcome}); follow it with "
            f"{hint(f'intent show {result.intent_id}', data_dir)}",
            ExitCode.TIMED_OUT,
        )
    raise typer.Exit(code)


@intent_app.command("show", epilog=exit_codes_epilog(0, 2, 3, 4, 5))
def intent_show(
    intent_id: Annotated[str, typer.Argument(help="The intent's id (UUID).")],
    as_json: AsJson = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Every event of one intent with timestamps, producer, signature and outcome.

    Exits 3 when nothing is stored for the id."""
    wanted = canonical_intent_id(intent_id)
    settings = load_settings(data_dir)

    async def go() -> IntentTrail:
        async with connected(settings, Identity.OPS) as ops:
            return await find_trail(ops, wanted, Verifier.from_dir(settings.certs_dir))

    trail = asyncio.run(go())
    typer.echo(
        json.dumps(trail.to_json(), indent=2, default=str) if as_json else render_trail(trail)
    )
    if not trail.entries:
        raise typer.Exit(ExitCode.NOT_FOUND)
