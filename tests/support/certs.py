"""Certificate helpers shared by the revocation tests: the revoke command, a refused connect."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from bus import Credentials, connect
from ops.cli import app


def revoke(*args: str) -> Result:
    """Run `tradeops certs revoke ...`."""
    return CliRunner().invoke(app, ["certs", "revoke", *args])


async def connect_refused(url: str, credentials: Credentials) -> BaseException:
    """Connect once, without reconnecting; return what refused the connection."""
    try:
        nc = await connect(
            url, credentials, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout_s=2
        )
    except Exception as exc:
        return exc
    await nc.close()
    raise AssertionError(f"{credentials.identity} connected to {url}; expected a refusal")
