"""Render nats-server configuration: mutual TLS, verify_and_map, one account per identity.

A single node, or the nodes of a cluster (TLS routes from the same CA, JetStream on every node).
Identities listed in the certificates' denylist (`revoked.json`) get no user.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bus.identity import CertPaths
from bus.limits import StorageSettings
from contracts import Identity
from contracts.permissions import Grant, grants
from contracts.subjects import inbox_prefix
from ops.pki.certs import ROUTE, SERVER, subject_dn


@dataclass(frozen=True)
class NatsLayout:
    """Where one nats-server listens and keeps its files."""

    certs: CertPaths
    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 4222
    monitor_port: int = 8222
    server_name: str = "tradeops-1"
    max_file_store: int = StorageSettings().max_file_store
    """The server's file store: every stream's reservation plus headroom (`[storage]`). The server
    reserves each stream's `max_bytes` against it, so one stream cannot take another's room."""
    max_memory_store: int = 256 * 1024 * 1024

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

_JS_API_INFO = "$JS.API.INFO"
# Requests answered with many messages: a pull request (the batch), a batched direct get.
_STREAMED_PREFIXES = ("$JS.API.CONSUMER.MSG.NEXT.", "$JS.API.DIRECT.GET.")


def account_of(identity: Identity) -> str:
    """Return the account of `identity`: ops shares the JetStream account, others have their own."""
    return JETSTREAM_ACCOUNT if identity is Identity.OPS else str(identity).upper()


def subjects_overlap(a: str, b: str) -> bool:
    """Return whether some concrete subject matches both `a` and `b` (wildcards allowed)."""
    left, right = a.split("."), b.split(".")
    for x, y in zip(left, right, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(left) == len(right)


@dataclass(frozen=True)
class Import:
    """One import of an account: a service (requests go out) or a stream (messages come in)."""

    kind: Literal["service", "stream"]
    account: str
    subject: str

    def render(self) -> str:
        if self.kind == "stream":
            return f"{{ stream: {{ account: {_q(self.account)}, subject: {_q(self.subject)} }} }}"
        return f"{{ service: {{ account: {_q(self.account)}, subject: {_q(self.subject)} }} }}"


@dataclass
class Account:
    """One account: its users and what it exports to and imports from the others."""

    name: str
    users: list[Grant] = field(default_factory=list)
    service_exports: dict[str, list[str]] = field(default_factory=dict)
    stream_exports: dict[str, list[str]] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)
    jetstream: str = ""
    """`enabled` for the one account with JetStream; empty for the others.

    No account-level `max_bytes_required`: a server started with it does not load a stream
    created without `max_bytes` (an older store's), and provisioning would then create it anew,
    empty. Provisioning gives every stream its limit instead (`bus/limits.py`)."""

    def render(self) -> list[str]:
        lines = [f"  {self.name} {{"]
        if self.jetstream:
            lines.append(f"    jetstream: {self.jetstream}")
        lines.append("    users = [")
        for grant in self.users:
            lines += _render_user(grant)
        lines.append("    ]")
        exports = [
            f"{{ service: {_q(subject)}, response_type: {_response_type(subject)}, "
            f"accounts: [{', '.join(_q(a) for a in accounts)}] }}"
            for subject, accounts in self.service_exports.items()
        ] + [
            f"{{ stream: {_q(subject)}, accounts: [{', '.join(_q(a) for a in accounts)}] }}"
            for subject, accounts in self.stream_exports.items()
        ]
        for key, items in (("exports", exports), ("imports", [i.render() for i in self.imports])):
            if items:
                lines += [f"    {key} = [", *(f"      {x}" for x in items), "    ]"]
        return [*lines, "  }"]


def _response_type(subject: str) -> str:
    # A singleton import forwards only the first answer back to the requester.
    return "stream" if subject.startswith(_STREAMED_PREFIXES) else "singleton"


def _render_user(grant: Grant) -> list[str]:
    pub = ", ".join(_q(x) for x in grant.publish)
    sub = ", ".join(_q(x) for x in grant.subscribe)
    return [
        "      {",
        f"        user: {_q(subject_dn(grant.identity))}",
        "        permissions: {",
        f"          publish: {{ allow: [{pub}] }}",
        f"          subscribe: {{ allow: [{sub}] }}",
        "        }",
        "      }",
    ]


def _check_no_overlap(grant: Grant) -> None:
    # Two overlapping service imports would forward one publish twice.
    for i, a in enumerate(grant.publish):
        for b in grant.publish[i + 1 :]:
            if subjects_overlap(a, b):
                raise ValueError(
                    f"{grant.identity} may publish both {a!r} and {b!r}, which overlap; "
                    "give each subject once in contracts/permissions.py"
                )


def accounts(revoked: Collection[str] = ()) -> list[Account]:
    """Return every account, derived from the grants; revoked identities get no user.

    Each identity but ops has an account of its own. It imports each subject it may publish as a
    service of the JetStream account, so a request's reply subject becomes a private `_R_.`
    subject there and the server's answer (a PubAck, a direct get, a pull delivery) reaches only
    the requester's account, where nothing is stored. With the streams in the requester's account
    (nats-server checks no reply subject against permissions), any identity could have the server
    write into any stream: a PubAck into CONTROL, or a replayed signed `control.resume`.

    Each subject it follows (core subscriptions) is imported as a stream from the JetStream
    account and from every other account that may publish it: a message that reached the
    JetStream account through a service import is not passed on to stream imports.
    """
    everyone = grants()
    js = Account(
        JETSTREAM_ACCOUNT,
        users=[g for g in everyone if g.identity is Identity.OPS],
        jetstream="enabled",
    )
    others = {g.identity: Account(account_of(g.identity), users=[g]) for g in everyone}
    others.pop(Identity.OPS)
    by_name = {js.name: js} | {a.name: a for a in others.values()}
    for identity, account in others.items():
        [grant] = account.users
        _check_no_overlap(grant)
        # `$JS.API.INFO` is imported (its use stays denied by the user's permissions) only so the
        # server gives the account no `$JS.API.>` import of its own, whose "JetStream not enabled
        # for account" would answer every API request before the JetStream account could.
        for subject in (*grant.publish, _JS_API_INFO):
            js.service_exports.setdefault(subject, []).append(account.name)
            account.imports.append(Import("service", js.name, subject))
        inbox = f"{inbox_prefix(identity)}."
        for subject in (x for x in grant.subscribe if not x.startswith(inbox)):
            sources = [js.name] + [
                account_of(g.identity)
                for g in everyone
                if g.identity not in (identity, Identity.OPS)
                and any(subjects_overlap(subject, p) for p in g.publish)
            ]
            for source in sources:
                by_name[source].stream_exports.setdefault(subject, []).append(account.name)
                account.imports.append(Import("stream", source, subject))
    result = [js, *others.values()]
    for account in result:
        account.users = [g for g in account.users if str(g.identity) not in revoked]
    return result


def render_permissions(revoked: Collection[str] = ()) -> str:
    """Return the `accounts` block: one user per certificate subject, allow-lists only."""
    lines = ["accounts {"]
    for account in accounts(revoked):
        lines += account.render()
    return "\n".join([*lines, "}"]) + "\n"


def render_tls(
    certs: CertPaths, name: str = SERVER, indent: str = "", *, routes: bool = False
) -> str:
    """Return a `tls` block: clients are mapped to users, routes are only verified."""
    verify = "verify: true" if routes else "verify_and_map: true"
    lines = [
        "tls {",
        f"  cert_file: {_q(certs.cert(name))}",
        f"  key_file: {_q(certs.key(name))}",
        f"  ca_file: {_q(certs.ca)}",
        f"  {verify}",
        "  timeout: 5",
        "}",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def _render_server(
    layout: NatsLayout, revoked: Collection[str], advertise: str = "", cluster: str = ""
) -> str:
    return (
        "# Generated by tradeops from contracts/permissions.py; do not edit by hand.\n"
        f"server_name: {_q(layout.server_name)}\n"
        f"listen: {_q(f'{layout.host}:{layout.port}')}\n"
        + (f"client_advertise: {_q(advertise)}\n" if advertise else "")
        + "# The monitoring port is plain HTTP, outside mTLS: loopback only.\n"
        f"http: {_q(f'127.0.0.1:{layout.monitor_port}')}\n"
        "max_payload: 1MB\n"
        "jetstream {\n"
        f"  store_dir: {_q(layout.store_dir)}\n"
        f"  max_memory_store: {layout.max_memory_store}\n"
        f"  max_file_store: {layout.max_file_store}\n"
        "}\n" + render_tls(layout.certs) + cluster + render_permissions(revoked)
    )


def render_single_node(layout: NatsLayout, revoked: Collection[str] = ()) -> str:
    """Return a complete single-node configuration with JetStream on file storage."""
    return _render_server(layout, revoked)


def revoked_file(certs: CertPaths) -> Path:
    """Return the denylist of revoked identities kept next to the certificates."""
    return certs.revoked


def read_revoked(certs: CertPaths) -> frozenset[str]:
    """Return the identities in `certs`' denylist (none when there is no `revoked.json`).

    A denylist that cannot be read is an error: a server must not start ignoring revocations.
    """
    path = revoked_file(certs)
    try:
        doc = json.loads(path.read_text())
        return frozenset(str(entry["identity"]) for entry in doc["revoked"])
    except FileNotFoundError:
        return frozenset()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a tradeops denylist ({exc!r}); fix it or restore it from a backup "
            "before (re)starting nats-server"
        ) from exc


def write_config(layout: NatsLayout, path: Path) -> Path:
    """Write the single-node configuration of `layout`, honouring its denylist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_single_node(layout, read_revoked(layout.certs)))
    return path


# -- cluster -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode:
    """One node of a cluster: where it serves clients, and the name others reach it by."""

    layout: NatsLayout
    hostname: str
    """How clients and the other nodes reach this node (a DNS name or an IP in the certs' SANs)."""
    route_port: int = 6222

    @property
    def client_url(self) -> str:
        return f"tls://{self.hostname}:{self.layout.port}"

    @property
    def route_url(self) -> str:
        return f"tls://{self.hostname}:{self.route_port}"


@dataclass(frozen=True)
class ClusterLayout:
    """A cluster of nats-servers sharing one CA, one set of accounts and JetStream."""

    nodes: tuple[ClusterNode, ...]
    name: str = "tradeops"

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (as `Settings.nats_url` takes them)."""
        return ",".join(node.client_url for node in self.nodes)


def render_cluster_node(cluster: ClusterLayout, index: int, revoked: Collection[str] = ()) -> str:
    """Return the configuration of `cluster.nodes[index]`: routes to every other node."""
    node = cluster.nodes[index]
    routes = [other.route_url for other in cluster.nodes if other is not node]
    block = (
        "# Routes: mutual TLS with the route certificate, from the same CA as clients'.\n"
        "cluster {\n"
        f"  name: {_q(cluster.name)}\n"
        f"  listen: {_q(f'{node.layout.host}:{node.route_port}')}\n"
        f"  advertise: {_q(f'{node.hostname}:{node.route_port}')}\n"
        + render_tls(node.layout.certs, ROUTE, "  ", routes=True)
        + "  routes = [\n"
        + "".join(f"    {_q(url)}\n" for url in routes)
        + "  ]\n"
        "}\n"
    )
    advertise = f"{node.hostname}:{node.layout.port}"
    return _render_server(node.layout, revoked, advertise, block)


def write_cluster_configs(cluster: ClusterLayout, directory: Path) -> list[Path]:
    """Write `<server_name>.conf` for every node into `directory`, honouring the denylist."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, node in enumerate(cluster.nodes):
        path = directory / f"{node.layout.server_name}.conf"
        path.write_text(render_cluster_node(cluster, index, read_revoked(node.layout.certs)))
        written.append(path)
    return written


REFERENCE_CERTS = CertPaths(Path("/etc/tradeops/certs"))
REFERENCE_STORE = Path("/var/lib/tradeops/jetstream")

REFERENCE_LAYOUT = NatsLayout(certs=REFERENCE_CERTS, store_dir=REFERENCE_STORE)
"""The layout of the reference configuration committed in `nats/single-node.conf`."""

REFERENCE_CLUSTER = ClusterLayout(
    tuple(
        ClusterNode(
            NatsLayout(
                certs=REFERENCE_CERTS,
                store_dir=REFERENCE_STORE,
                host="0.0.0.0",
                server_name=f"nats-{n}",
            ),
            hostname=f"nats-{n}",
        )
        for n in (1, 2, 3)
    )
)
"""The compose cluster committed in `nats/cluster/`: one container per node, same paths in each."""
