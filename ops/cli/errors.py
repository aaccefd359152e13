"""Every expected failure of a `tradeops` command becomes one line on stderr and an exit code.

The root command group (`TradeopsGroup`) runs each command; whatever it raises is mapped here,
in one place: `explain` turns an exception into what is wrong and what to do (one line, no
traceback) and its documented `ExitCode`. Commands raise what they know (`fail(...)`, or the
library's own errors: an unreachable stack, a missing certificate, a corrupt run file, an
invalid value, a timeout) and never print tracebacks themselves. Anything unexpected is a bug:
one line saying so, exit 70, and the traceback only with `TRADEOPS_DEBUG=1`.

This module imports no library a failure may come from (nats, asyncpg, pydantic…): an exception
is matched against a class only when that class's module is loaded (`_is`), since nothing else
could have raised it, so that `tradeops --version` does not pay for them.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from ops.cli.options import DATA_DIR_KEY, DEFAULT_DATA_DIR, ExitCode, hint

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ops.dlq import DlqError
    from ops.stack.signals import Interrupted

MAX_LINE = 400
"""The longest error line printed; the rest of a longer message is cut."""
DEBUG_ENV = "TRADEOPS_DEBUG"


class CommandFailed(Exception):
    """A command's own failure: the message is the line to print, with its exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: ExitCode = ExitCode.PROBLEMS) -> NoReturn:
    """Stop the command: `error: <message>` on stderr, exit `code`."""
    raise CommandFailed(message, code)


@dataclass(frozen=True)
class Failure:
    """What to print and how to exit."""

    message: str
    code: int


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` on one line: whitespace runs (newlines too) become one space, cut at `limit`."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def validation_message(exc: ValidationError, what: str | None = None) -> str:
    """`invalid <what>: <field>: <first problem> (and N more)`."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    field = f"{where}: " if where else ""
    return f"invalid {what or exc.title}: {field}{first['msg']}{more}"


def _validation(exc: ValidationError, data_dir: Path) -> Failure:
    if exc.title == "Settings":
        return Failure(
            f"{validation_message(exc, 'settings')}; fix {data_dir / 'tradeops.toml'} or the "
            "TRADEOPS_* variable that sets it",
            ExitCode.SETUP,
        )
    return Failure(validation_message(exc), ExitCode.USAGE)


def _os_error(exc: OSError) -> Failure:
    where = f" {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    if isinstance(exc, ConnectionError):
        return Failure(f"connection failed: {what}", ExitCode.UNREACHABLE)
    if isinstance(exc, FileNotFoundError):
        return Failure(str(exc) if not exc.filename else f"no such file:{where}", ExitCode.SETUP)
    if isinstance(exc, PermissionError | IsADirectoryError | NotADirectoryError):
        return Failure(f"cannot use{where}: {what}", ExitCode.SETUP)
    if exc.errno == errno.ENOSPC:
        return Failure(f"no space left on the device{where}", ExitCode.PROBLEMS)
    return Failure(f"{what}{where}", ExitCode.PROBLEMS)


def _postgres(exc: BaseException) -> Failure:
    import asyncpg  # noqa: PLC0415  (loaded: `exc` is one of its errors)

    if isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.InvalidCatalogNameError,
    ):
        return Failure(f"Postgres is not usable: {exc}", ExitCode.UNREACHABLE)
    return Failure(f"Postgres refused the query: {exc}", ExitCode.PROBLEMS)


def _nats(exc: BaseException, data_dir: Path) -> Failure:
    import nats.errors  # noqa: PLC0415  (loaded: `exc` is one of its errors)
    import nats.js.errors  # noqa: PLC0415

    if isinstance(exc, nats.js.errors.NotFoundError):
        return Failure(
            f"JetStream has no such stream or consumer ({exc.description}); provision the "
            f"topology: {hint('provision', data_dir)}",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, nats.js.errors.APIError):
        return Failure(f"JetStream refused: {exc.description or exc}", ExitCode.PROBLEMS)
    if isinstance(exc, nats.errors.NoRespondersError):
        return Failure(
            "nothing answered on NATS (JetStream not enabled or not provisioned yet); "
            f"{hint('status', data_dir)} shows the stack",
            ExitCode.UNREACHABLE,
        )
    if isinstance(exc, nats.errors.TimeoutError):
        return Failure("NATS did not answer in time; is the stack healthy?", ExitCode.UNREACHABLE)
    return Failure(f"NATS: {type(exc).__name__} {exc}", ExitCode.UNREACHABLE)


def _is(exc: BaseException, module: str, *names: str) -> bool:
    """Whether `exc` is one of `module`'s classes `names`; False when `module` is not loaded
    (then nothing can have raised one of them)."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    kinds = tuple(getattr(loaded, name) for name in names)
    return isinstance(exc, kinds)


KNOWN: tuple[tuple[str, str, ExitCode], ...] = (
    ("ops.client", "StackUnreachable", ExitCode.UNREACHABLE),
    ("ops.stack.state", "CorruptRunFile", ExitCode.SETUP),
    ("ops.client", "BadCredentials", ExitCode.SETUP),
    ("ops.stack.embedded", "PortInUse", ExitCode.SETUP),
    ("ops.audit.trail", "NotAnIntentId", ExitCode.USAGE),
    ("ops.stack.embedded", "AgentsNotReady", ExitCode.UNREACHABLE),
    ("bus.provision", "LimitsRefused", ExitCode.SETUP),
)
"""Failures whose message is the line to print: (module, class, exit code)."""


def explain(exc: BaseException, data_dir: Path = DEFAULT_DATA_DIR) -> Failure | None:
    """The line and exit code for an expected failure (hints name `data_dir`); None for a bug."""
    for module, name, code in KNOWN:
        if _is(exc, module, name):
            return Failure(str(exc), code)
    if isinstance(exc, CommandFailed):
        return Failure(str(exc), exc.code)
    if _is(exc, "ops.stack.signals", "Interrupted"):
        stopped = cast("Interrupted", exc)
        return Failure(f"{exc}; everything it started has stopped", stopped.exit_code)
    if _is(exc, "ops.dlq", "DlqError"):
        return Failure(f"{cast('DlqError', exc).code}: {exc}", ExitCode.NOT_FOUND)
    if _is(exc, "pydantic_core", "ValidationError"):
        return _validation(cast("ValidationError", exc), data_dir)
    if _is(exc, "tomllib", "TOMLDecodeError"):
        return Failure(f"the settings file is not valid TOML: {exc}", ExitCode.SETUP)
    if _is(exc, "nats.errors", "Error"):
        return _nats(exc, data_dir)
    if _is(exc, "asyncpg", "PostgresError", "InterfaceError"):
        return _postgres(exc)
    if isinstance(exc, TimeoutError):
        text = str(exc) or "timed out waiting for the stack"
        return Failure(text, ExitCode.UNREACHABLE)
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def report(exc: Exception, data_dir: Path = DEFAULT_DATA_DIR) -> NoReturn:
    """Print the one line for `exc` and exit with its code (re-raise when debugging)."""
    if os.environ.get(DEBUG_ENV):
        raise exc
    failure = explain(exc, data_dir)
    if failure is None:
        failure = Failure(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in tradeops: run "
            f"again with {DEBUG_ENV}=1 for the traceback and report it",
            ExitCode.INTERNAL,
        )
    typer.echo(f"error: {one_line(failure.message)}", err=True)
    raise typer.Exit(failure.code)


def _broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def usage_error(exc: ClickException) -> NoReturn:
    """A bad command line as one line too: `error: <click's message> (see `<command> --help`)`,
    with click's exit code (2; 1 for a file it cannot open). A help page asked for by giving no
    arguments is printed as click prints it."""
    if isinstance(exc, NoArgsIsHelpError):
        raise exc
    ctx = getattr(exc, "ctx", None)
    see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    typer.echo(f"error: {one_line(exc.format_message())}{see}", err=True)
    raise typer.Exit(exc.exit_code)


class TradeopsGroup(TyperGroup):
    """The root group: runs a command and maps whatever it raises through `explain`; a bad
    command line (click's usage errors) becomes one line as well."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except ClickException as exc:  # a bad root option: `tradeops --bogus`
            usage_error(exc)

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except ClickException as exc:  # a bad command name, option or argument
            usage_error(exc)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # --help, explicit exits: click reports them itself
        except Exception as exc:
            if _broken_pipe(exc):
                raise  # the reader went away (`| head`): typer exits quietly
            report(exc, Path(ctx.meta.get(DATA_DIR_KEY, DEFAULT_DATA_DIR)))
