"""`tradeops certs init | revoke`: the identities, and refusing one at once.

`certs revoke NAME` refuses an identity without restarting any agent.

nats-server maps a client certificate to its user by subject (`verify_and_map`), so the denylist
is per identity: `<data_dir>/certs/revoked.json` names it (with the serial of the certificate it
held, for the record), and every configuration rendered from then on (`ops.natsconf`) has no user
for it. When a stack runs in the data dir, its server's configuration is re-rendered and the
server reloaded with SIGHUP: the revoked identity's connections are closed (`Authorization
Violation`) and refused from then on, while every other connection stays up. To readmit an
identity, remove its entry from `revoked.json` and run `tradeops certs revoke --reload-only`.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509

from agents.settings import load_settings
from bus.identity import CertPaths
from contracts import Identity
from ops.cli.errors import fail
from ops.cli.options import DEFAULT_DATA_DIR, DataDir, ExitCode, exit_codes_epilog
from ops.pki.certs import ROUTE, SERVER, init_certs, subject_dn
from ops.pki.natsconf import read_revoked, revoked_file, write_config
from ops.stack.embedded import nats_layout
from ops.stack.state import pid_alive, read_state

RELOAD_TIMEOUT_S = 10.0
NOT_IDENTITIES = {SERVER, ROUTE, "ca"}


certs_app = typer.Typer(
    help="Identities: the CA and one certificate per identity.", no_args_is_help=True
)


class RevocationError(Exception):
    """A revocation that cannot be done as asked; the message says what to do."""


class UnknownIdentity(RevocationError):
    """No certificate of that name or serial: nothing by that id (exit 3)."""


def _certificate(paths: CertPaths, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(paths.cert(name).read_bytes())


def resolve(paths: CertPaths, name_or_serial: str) -> str:
    """Return the certificate name for an identity name or a certificate serial (hex)."""
    if paths.cert(name_or_serial).exists() and name_or_serial not in NOT_IDENTITIES:
        return name_or_serial
    digits = name_or_serial.lower().removeprefix("0x").replace(":", "")
    serial = int(digits, 16) if digits and all(c in "0123456789abcdef" for c in digits) else None
    for pem in sorted(paths.certs_dir.glob("*.pem")):
        name = pem.stem
        if name.endswith("-key") or name in NOT_IDENTITIES:
            continue
        if serial is not None and _certificate(paths, name).serial_number == serial:
            return name
    known = ", ".join(str(i) for i in Identity)
    raise UnknownIdentity(
        f"no identity certificate named or with serial {name_or_serial!r} in {paths.certs_dir}; "
        f"give an identity ({known}) or the hex serial of one of its certificates"
    )


def record(paths: CertPaths, name: str, reason: str) -> bool:
    """Add `name` to the denylist; return False when it was already there."""
    if name in read_revoked(paths):
        return False
    path = revoked_file(paths)
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"revoked": []}
    cert = _certificate(paths, name)
    doc["revoked"].append(
        {
            "identity": name,
            "subject": subject_dn(name),
            "serial": f"{cert.serial_number:x}",
            "not_after": cert.not_valid_after_utc.isoformat(),
            "revoked_at": datetime.now(UTC).isoformat(),
            "reason": reason,
        }
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return True


def _config_load_time(monitor_url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{monitor_url}/varz", timeout=2) as resp:
            return str(json.loads(resp.read())["config_load_time"])
    except (OSError, ValueError, KeyError):
        return None


def reload_running_server(data_dir: Path) -> int | None:
    """Re-render the running stack's nats-server configuration and reload it (SIGHUP).

    Returns the server's pid, or None when no stack runs in `data_dir` (the next start renders
    the configuration with the denylist anyway).
    """
    state = read_state(data_dir)
    server = state.components.get("nats-server") if state is not None else None
    pid = server.pid if server is not None else None
    if state is None or pid is None or not pid_alive(pid):
        return None
    layout = nats_layout(load_settings(state.data_dir))
    if layout.url != state.nats.url or layout.monitor_url != state.nats.monitor_url:
        raise RevocationError(
            f"the running server ({state.nats.url}) was not started with this data dir's "
            f"settings ({layout.url}); run the command with the settings of `tradeops up`"
        )
    before = _config_load_time(layout.monitor_url)
    write_config(layout, state.data_dir / "nats" / "nats.conf")
    os.kill(pid, signal.SIGHUP)  # what `nats-server --signal reload=<pid>` sends
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if _config_load_time(layout.monitor_url) not in (before, None):
            return pid
        time.sleep(0.05)
    raise RevocationError(
        f"nats-server (pid {pid}) did not reload within {RELOAD_TIMEOUT_S:.0f}s; see "
        f"{state.data_dir / 'logs' / 'nats-server.log'} for the configuration error"
    )


@certs_app.command("init", epilog=exit_codes_epilog(0, 5))
def certs_init(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Create the CA, the server certificate, and each identity's certificate and signing key."""
    paths, created = init_certs(data_dir)
    if created:
        for path in created:
            typer.echo(f"created {path}")
    else:
        typer.echo(f"all identities already exist in {paths.certs_dir}; nothing overwritten")


@certs_app.command("revoke", epilog=exit_codes_epilog(0, 1, 2, 3, 5))
def revoke(
    name: Annotated[
        str | None,
        typer.Argument(help="Identity (e.g. client, analyst) or a certificate serial (hex)."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    reload_only: Annotated[
        bool, typer.Option(help="Only re-render and reload (after editing revoked.json).")
    ] = False,
) -> None:
    """Deny an identity: no new connection, and its open ones closed, agents untouched."""
    paths = CertPaths(data_dir / "certs")
    try:
        if not reload_only:
            if name is None:
                fail("name the identity (or serial) to revoke", ExitCode.USAGE)
            resolved = resolve(paths, name)
            if resolved == str(Identity.OPS):
                typer.echo("warning: without ops, nobody can provision or flip the kill switch")
            added = record(paths, resolved, reason)
            verb = "revoked" if added else "already revoked"
            typer.echo(f"{verb}: {resolved} ({subject_dn(resolved)}) in {revoked_file(paths)}")
        pid = reload_running_server(data_dir)
    except UnknownIdentity as exc:
        fail(str(exc), ExitCode.NOT_FOUND)
    except (RevocationError, ValueError) as exc:
        fail(str(exc), ExitCode.PROBLEMS)
    if pid is None:
        typer.echo("no running stack in this data dir; its next start applies the denylist")
    else:
        typer.echo(f"nats-server (pid {pid}) reloaded; revoked identities are disconnected")
