"""Render nats-server configuration: mutual TLS, verify_and_map, per-identity permissions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from contracts import Identity
from contracts.permissions import Grant, grants
from contracts.subjects import inbox_prefix
from ops.certs import CertPaths, subject_dn


@dataclass(frozen=True)
class NatsLayout:
    """Where one nats-server listens and keeps its files."""

    certs: CertPaths
    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 4222
    monitor_port: int = 8222
    server_name: str = "tradeops-1"

    @property
    def url(self) -> str:
        return f"tls://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"


def _q(value: str | Path) -> str:
    return json.dumps(str(value))


JETSTREAM_ACCOUNT = "TRADEOPS"
"""The one account with JetStream: every stream, consumer and KV bucket, and the ops user."""

_JS_API_PREFIX = "$JS.API."
_JS_API_INFO = "$JS.API.INFO"
_PULL_REQUEST_PREFIX = "$JS.API.CONSUMER.MSG.NEXT."


def account_of(identity: Identity) -> str:
    """Return the account of `identity`: ops shares the JetStream account, others have their own."""
    return JETSTREAM_ACCOUNT if identity is Identity.OPS else str(identity).upper()


def subjects_overlap(a: str, b: str) -> bool:
    """Return whether some concrete subject matches both `a` and `b` (wildcards allowed)."""
    left, right = a.split("."), b.split(".")
    for i, (x, y) in enumerate(zip(left, right, strict=False)):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
        if i == min(len(left), len(right)) - 1 and len(left) != len(right):
            return False
    return len(left) == len(right)


def _response_type(subject: str) -> str:
    # A pull request is answered with many messages (the batch); everything else with one.
    return "stream" if subject.startswith(_PULL_REQUEST_PREFIX) else "singleton"


def _share(subject: str) -> str:
    # The JetStream API serves the account named in the request's client info, which the server
    # passes along the JetStream account's own import of `$JS.API.>` only when it is shared.
    return ", share: true" if subject.startswith(_JS_API_PREFIX) else ""


def _imported_subscriptions(grant: Grant) -> tuple[str, ...]:
    # Replies reach the private inbox through the service imports; no import needed for them.
    inbox = f"{inbox_prefix(grant.identity)}."
    return tuple(x for x in grant.subscribe if not x.startswith(inbox))


def _check_no_overlap(grant: Grant) -> None:
    # Two overlapping service imports would forward one publish twice.
    for i, a in enumerate(grant.publish):
        for b in grant.publish[i + 1 :]:
            if subjects_overlap(a, b):
                raise ValueError(
                    f"{grant.identity} may publish both {a!r} and {b!r}, which overlap; "
                    "give each subject once in contracts/permissions.py"
                )


def _user(grant: Grant, indent: str) -> list[str]:
    pub = ", ".join(_q(x) for x in grant.publish)
    sub = ", ".join(_q(x) for x in grant.subscribe)
    return [
        f"{indent}{{",
        f"{indent}  user: {_q(subject_dn(grant.identity))}",
        f"{indent}  permissions: {{",
        f"{indent}    publish: {{ allow: [{pub}] }}",
        f"{indent}    subscribe: {{ allow: [{sub}] }}",
        f"{indent}  }}",
        f"{indent}}}",
    ]


def _service_imports(grant: Grant) -> tuple[str, ...]:
    # `$JS.API.INFO` is imported (its use stays denied by the user's permissions) only so that
    # the server does not give the account its own import of `$JS.API.>`, which would answer
    # "JetStream not enabled for account" to every API request before the JetStream account can.
    return (*grant.publish, _JS_API_INFO)


def _exports(others: tuple[Grant, ...]) -> list[str]:
    services: dict[str, list[str]] = {}
    streams: dict[str, list[str]] = {}
    for grant in others:
        for subject in _service_imports(grant):
            services.setdefault(subject, []).append(account_of(grant.identity))
        for subject in _imported_subscriptions(grant):
            streams.setdefault(subject, []).append(account_of(grant.identity))
    lines = []
    for subject, accounts in services.items():
        lines.append(
            f"      {{ service: {_q(subject)}, response_type: {_response_type(subject)}, "
            f"accounts: [{', '.join(_q(a) for a in accounts)}] }}"
        )
    for subject, accounts in streams.items():
        lines.append(
            f"      {{ stream: {_q(subject)}, accounts: [{', '.join(_q(a) for a in accounts)}] }}"
        )
    return lines


def _imports(grant: Grant) -> list[str]:
    source = _q(JETSTREAM_ACCOUNT)
    lines = [
        f"      {{ service: {{ account: {source}, subject: {_q(x)} }}{_share(x)} }}"
        for x in _service_imports(grant)
    ]
    lines += [
        f"      {{ stream: {{ account: {source}, subject: {_q(x)} }} }}"
        for x in _imported_subscriptions(grant)
    ]
    return lines


def render_permissions() -> str:
    """Return the `accounts` block: one user per certificate subject, allow-lists only.

    JetStream lives in one account, shared only with ops. Every other identity has an account of
    its own that imports exactly the subjects of its grant. nats-server does not check a reply
    subject against the publisher's permissions, and the server's answer (a PubAck, a direct get,
    a pull delivery) is published on that reply subject in the requester's account; with the
    streams in the requester's account, an agent could have the server write into any stream,
    e.g. replay a signed `control.resume` into CONTROL. Across an import the reply becomes a
    private `_R_.` subject in the JetStream account, so the answer can only reach the requester's
    own account, where nothing is stored.
    """
    everyone = grants()
    ops = tuple(g for g in everyone if account_of(g.identity) == JETSTREAM_ACCOUNT)
    others = tuple(g for g in everyone if account_of(g.identity) != JETSTREAM_ACCOUNT)
    lines = ["accounts {", f"  {JETSTREAM_ACCOUNT} {{", "    jetstream: enabled", "    users = ["]
    for grant in ops:
        lines += _user(grant, "      ")
    lines += ["    ]", "    exports = [", *_exports(others), "    ]", "  }"]
    for grant in others:
        _check_no_overlap(grant)
        lines += [f"  {account_of(grant.identity)} {{", "    users = ["]
        lines += _user(grant, "      ")
        lines += ["    ]", "    imports = [", *_imports(grant), "    ]", "  }"]
    lines += ["}"]
    return "\n".join(lines) + "\n"


def render_tls(certs: CertPaths, name: str = "server") -> str:
    return (
        "tls {\n"
        f"  cert_file: {_q(certs.cert(name))}\n"
        f"  key_file: {_q(certs.key(name))}\n"
        f"  ca_file: {_q(certs.ca)}\n"
        "  verify_and_map: true\n"
        "  timeout: 5\n"
        "}\n"
    )


def render_single_node(layout: NatsLayout) -> str:
    """Return a complete single-node configuration with JetStream on file storage."""
    return (
        "# Generated by tradeops from contracts/permissions.py; do not edit by hand.\n"
        f"server_name: {_q(layout.server_name)}\n"
        f"listen: {_q(f'{layout.host}:{layout.port}')}\n"
        "# The monitoring port is plain HTTP, outside mTLS: loopback only.\n"
        f"http: {_q(f'127.0.0.1:{layout.monitor_port}')}\n"
        "max_payload: 1MB\n"
        "jetstream {\n"
        f"  store_dir: {_q(layout.store_dir)}\n"
        "  max_memory_store: 256MB\n"
        "  max_file_store: 20GB\n"
        "}\n" + render_tls(layout.certs) + render_permissions()
    )


def write_config(layout: NatsLayout, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_single_node(layout))
    return path


REFERENCE_LAYOUT = NatsLayout(
    certs=CertPaths(Path("/etc/tradeops/certs")), store_dir=Path("/var/lib/tradeops/jetstream")
)
"""The layout of the reference configuration committed in `nats/single-node.conf`."""
