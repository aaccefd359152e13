"""Operator-side connections and intent submission, shared by the CLI and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from agents.settings import Settings
from bus import Credentials, Signer, Verifier, connect
from contracts import Identity, SubmitIntent
from contracts import subjects as s
from ops.audit.trail import IntentTrail, canonical_intent_id, find_trail
from ops.stack.state import read_state

CONNECT_TIMEOUT_S = 10.0
"""How long a command waits for NATS to accept its connection, unless it is given a timeout."""
CLOSE_TIMEOUT_S = 2.0
"""How long closing a connection may take: drain (unsubscribe, flush), then close."""
TLS_CLOSE_NOISE = "APPLICATION_DATA_AFTER_CLOSE_NOTIFY"
"""OpenSSL's reason when the server still sends after we said goodbye: nothing is lost (we are
closing, and read nothing more), but asyncio and nats-py report it as an error."""


class StackUnreachable(Exception):
    """The stack's NATS cannot be reached (not running, refused, timed out); says what to do."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message
        """Why, in a few words (`connection refused`, `no answer within 3s`)."""


class BadCredentials(Exception):
    """An identity's certificate or key is there but cannot be used; says which file."""


def stack_nats_urls(settings: Settings) -> list[str]:
    """Where the stack's NATS is: the configured URLs when set (`TRADEOPS_NATS_URL`), else the
    running stack's (its run file), else the embedded server's default address.

    Raises `CorruptRunFile` when the run file is unreadable."""
    if settings.nats_url:
        return settings.nats_servers()
    state = read_state(settings.data_dir)
    return [state.nats.url] if state is not None else settings.nats_servers()


def stack_nats_url(settings: Settings) -> str:
    """`stack_nats_urls` as one line, for messages."""
    return ", ".join(stack_nats_urls(settings))


def stack_database_url(settings: Settings) -> str | None:
    """The configured Postgres URL, else the running stack's (its run file), else None."""
    if settings.database_url:
        return settings.database_url
    state = read_state(settings.data_dir)
    return state.database.url if state is not None else None


def _tls(credentials: Credentials) -> None:
    """Fail now, with the file named, when the identity's certificates cannot be loaded."""
    try:
        credentials.ssl_context()  # FileNotFoundError names the file and `certs init`
    except (ssl.SSLError, ValueError) as exc:
        raise BadCredentials(
            f"the {credentials.identity} certificate or key in {credentials.certs_dir} cannot "
            f"be loaded ({getattr(exc, 'reason', None) or exc}); restore them from where they "
            "were issued"
        ) from None


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return f"no answer within {timeout_s:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, nats.errors.NoServersError):
        return "no server answered"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def connected(
    settings: Settings,
    identity: Identity,
    *,
    servers: list[str] | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> AsyncIterator[NATS]:
    """Connect to the stack of `settings.data_dir` as `identity`, or fail within `timeout_s`.

    The one way operator tools connect: certificates from the data dir, the stack's URL from
    `stack_nats_urls` (or `servers`), no reconnect (a command that lost its server should say
    so, not hang). Raises `StackUnreachable`, `FileNotFoundError` (a missing certificate) or
    `BadCredentials`."""
    urls = servers or stack_nats_urls(settings)
    credentials = Credentials(identity, settings.certs_dir)
    _tls(credentials)
    try:
        async with asyncio.timeout(timeout_s):
            nc = await connect(
                urls,
                credentials,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # nats-py also applies it to the first connect
                connect_timeout_s=min(3.0, timeout_s),
            )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        nothing_runs = settings.nats_url is None and read_state(settings.data_dir) is None
        where = (
            f"no stack has run in {settings.data_dir} (start one: `tradeops up --data-dir "
            f"{settings.data_dir}`)"
            if nothing_runs
            else f"is the stack running? `tradeops status --data-dir {settings.data_dir}`"
        )
        why = _why(exc, timeout_s)
        raise StackUnreachable(
            f"cannot reach NATS at {', '.join(urls)} as {identity} ({why}); {where}", why
        ) from None
    _quiet_tls_close(asyncio.get_running_loop())
    try:
        yield nc
    finally:
        await close_quietly(nc)


def is_tls_close_noise(exc: BaseException | None) -> bool:
    """Whether `exc` is only the server's data arriving after our TLS close_notify."""
    return isinstance(exc, ssl.SSLError) and (
        exc.reason == TLS_CLOSE_NOISE or TLS_CLOSE_NOISE in str(exc)
    )


class _TlsCloseNoise(logging.Filter):
    """Drops nats-py's error callback line for `TLS_CLOSE_NOISE` (`tradeops.bus` logs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return TLS_CLOSE_NOISE not in record.getMessage()


_NOISE_FILTER = _TlsCloseNoise()


def _quiet_tls_close(loop: asyncio.AbstractEventLoop) -> None:
    """On `loop`, ignore exactly the TLS close noise (a task or future that ended with it and
    was never awaited); every other error goes to the handler that was there before."""
    logging.getLogger("tradeops.bus").addFilter(_NOISE_FILTER)  # a set: added once
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_tls_close", False):
        return

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_tls_close_noise(context.get("exception")):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    handler.quiets_tls_close = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


async def close_quietly(nc: NATS, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Close `nc` without noise: drain first, so that the server stops sending to our
    subscriptions before the TLS goodbye (data after it is what OpenSSL complains of), then
    close; never raises, never takes more than `timeout_s`."""
    if nc.is_closed:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), timeout_s)
    if not nc.is_closed:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), timeout_s)


def load_signer(settings: Settings, identity: Identity = Identity.OPS) -> Signer:
    """The identity's signing key from the data dir; a missing or bad key is named."""
    path = Credentials(identity, settings.certs_dir).signing_key_file
    try:
        return Signer.from_file(identity, path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: records of {identity} must be signed with its key; run this "
            f"where the {identity} identity lives, or `tradeops certs init --data-dir "
            f"{settings.data_dir}` for a new data dir"
        ) from None
    except (OSError, ValueError) as exc:
        raise BadCredentials(f"cannot load the {identity} signing key {path} ({exc})") from None


async def submit(nc: NATS, intent: SubmitIntent) -> uuid.UUID:
    """Publish an intent as the client; return its id (assigned here when absent)."""
    if intent.intent_id is None:
        intent = intent.model_copy(update={"intent_id": uuid.uuid4()})
    assert intent.intent_id is not None
    payload = intent.model_dump_json(exclude_none=True).encode()
    await nc.jetstream().publish(s.of(s.INTENT_SUBMITTED, intent.symbol), payload)
    return intent.intent_id


async def submit_raw(nc: NATS, symbol: str, payload: bytes) -> None:
    """Publish arbitrary bytes as a submission (to show how bad input is handled)."""
    await nc.jetstream().publish(s.of(s.INTENT_SUBMITTED, symbol), payload)


async def wait_outcome(
    ops_nc: NATS, intent_id: uuid.UUID | str, certs_dir: Path, timeout_s: float = 30.0
) -> IntentTrail:
    """Wait until the intent reaches a terminal outcome (or the timeout); return its trail.

    Follows the intent's own subjects (`*.*.*.<id>`, `dlq.*.<id>`) and reads the trail again
    whenever one of its events is stored, so the answer comes within one lookup of the terminal
    event; nothing else in the store is read. A slow re-check covers a missed message."""
    verifier = Verifier.from_dir(certs_dir)
    wanted = canonical_intent_id(intent_id)
    stored = asyncio.Event()

    async def on_event(_msg: Msg) -> None:
        stored.set()

    subs = [
        await ops_nc.subscribe(s.of_intent(wanted), cb=on_event),
        await ops_nc.subscribe(s.dead_letters_of(wanted), cb=on_event),
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while True:
            stored.clear()
            trail = await find_trail(ops_nc, wanted, verifier)
            left = deadline - loop.time()
            if trail.terminal or left <= 0:
                return trail
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stored.wait(), min(left, RECHECK_S))
            await asyncio.sleep(STORE_GRACE_S)  # published is not yet readable by direct get
    finally:
        for sub in subs:
            await sub.unsubscribe()


RECHECK_S = 1.0
"""Re-read the trail at least this often while waiting (a reconnect may miss a message)."""
STORE_GRACE_S = 0.002
