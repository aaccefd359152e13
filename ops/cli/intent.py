"""`tradeops intent submit | show`."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated

import typer

from agents.settings import load_settings
from bus import Verifier
from contracts import Identity, OrderType, Side, SubmitIntent
from ops.audit.trail import IntentTrail, NotAnIntentId, find_trail
from ops.cli.intent_list import register as register_list
from ops.cli.options import DEFAULT_DATA_DIR, DataDir
from ops.cli.render import render_trail
from ops.client import connected, submit, wait_outcome


def register(app: typer.Typer) -> None:
    intent_app = typer.Typer(help="Submit trade intents and follow them.", no_args_is_help=True)
    app.add_typer(intent_app, name="intent")

    @intent_app.command("submit")
    def intent_submit(
        symbol: str,
        side: Side,
        quantity: str,
        limit: Annotated[
            str | None, typer.Option("--limit", help="Limit price (limit order).")
        ] = None,
        account: Annotated[str, typer.Option(help="Trading account.")] = "paper-1",
        intent_id: Annotated[
            str | None, typer.Option("--id", help="Idempotency key (UUID).")
        ] = None,
        rationale: Annotated[str | None, typer.Option(help="Free text for the analyst.")] = None,
        wait: Annotated[bool, typer.Option(help="Wait for the terminal outcome.")] = False,
        timeout_s: Annotated[float, typer.Option("--timeout")] = 30.0,
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Publish a trade intent as the client identity; print its id."""
        body = {
            "symbol": symbol,
            "side": side,
            "quantity": quantity,
            "account": account,
            "order_type": OrderType.LIMIT if limit else OrderType.MARKET,
            "limit_price": limit,
            "rationale": rationale,
            "intent_id": intent_id,
        }
        try:
            intent = SubmitIntent.model_validate_json(
                json.dumps({k: v for k, v in body.items() if v is not None})
            )
        except ValueError as exc:
            typer.echo(f"invalid intent: {exc}", err=True)
            raise typer.Exit(2) from None
        settings = load_settings(data_dir)

        async def go() -> IntentTrail | uuid.UUID:
            async with connected(settings, Identity.CLIENT) as nc:
                iid = await submit(nc, intent)
            typer.echo(str(iid))
            if not wait:
                return iid
            async with connected(settings, Identity.OPS) as ops:
                return await wait_outcome(ops, iid, settings.certs_dir, timeout_s)

        result = asyncio.run(go())
        if isinstance(result, IntentTrail):
            typer.echo(render_trail(result))
            if not result.terminal:
                raise typer.Exit(4)

    @intent_app.command("show")
    def intent_show(
        intent_id: str,
        as_json: Annotated[bool, typer.Option("--json")] = False,
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        """Every event of one intent with timestamps, producer, signature and outcome."""
        settings = load_settings(data_dir)

        async def go() -> IntentTrail:
            async with connected(settings, Identity.OPS) as ops:
                return await find_trail(ops, intent_id, Verifier.from_dir(settings.certs_dir))

        try:
            trail = asyncio.run(go())
        except NotAnIntentId as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            json.dumps(trail.to_json(), indent=2, default=str) if as_json else render_trail(trail)
        )
        if not trail.entries:
            raise typer.Exit(3)

    register_list(intent_app)  # `intent list`, `intent watch`
