"""The embedded stack: nats-server, Postgres and every agent on one machine, supervised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from agents.registry import available_agents
from agents.settings import Settings
from bus import provision
from bus.identity import CertPaths
from contracts import Identity
from ops.client import connected
from ops.outcomes import OutcomeService
from ops.outcomes import serve as serve_outcomes
from ops.pki.certs import init_certs
from ops.pki.natsconf import NatsLayout, write_config
from ops.stack.natsd import nats_server_binary, wait_healthy
from ops.stack.state import (
    DatabaseEndpoint,
    NatsEndpoints,
    StackPhase,
    StackState,
    clear_pid,
    run_dir,
    write_pid,
    write_state,
)
from ops.stack.supervisor import Supervised
from ops.storage import StorageExporter, unbacked_bytes
from ops.storage import serve as serve_storage_metrics

log = logging.getLogger("tradeops.stack")

Progress = Callable[[str], None]


def nats_layout(settings: Settings) -> NatsLayout:
    return NatsLayout(
        certs=CertPaths(settings.certs_dir),
        store_dir=(settings.data_dir / "nats" / "jetstream").resolve(),
        port=settings.nats_port,
        monitor_port=settings.nats_monitor_port,
        max_file_store=settings.storage.max_file_store,
    )


def http_ok(url: str) -> bool:
    """Return whether `url` answers 200 within half a second."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class PortInUse(Exception):
    """A port the settings name is taken by another process; the message names the setting."""


class AgentsNotReady(TimeoutError):
    """Agents whose /readyz did not answer 200 in time."""

    def __init__(self, agents: list[str], timeout_s: float, log_tails: str = "") -> None:
        super().__init__(f"agents not ready after {timeout_s:.0f}s: {', '.join(agents)}")
        self.agents = agents
        self.log_tails = log_tails


def _taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server binds
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(settings: Settings) -> None:
    """Raise `PortInUse` for the first port of the stack another process listens on."""
    data_dir = settings.data_dir
    wanted = [
        ("nats_port", "127.0.0.1", settings.nats_port),
        ("nats_monitor_port", "127.0.0.1", settings.nats_monitor_port),
        ("storage.metrics_port", settings.health_host, settings.storage.metrics_port),
    ] + [
        (f"health_ports.{agent}", settings.health_host, port)
        for agent, port in sorted(settings.health_ports.items())
    ]
    seen: dict[int, str] = {}
    for setting, host, port in wanted:
        env = "TRADEOPS_" + setting.upper().replace(".", "__")
        if port in seen:
            raise PortInUse(
                f"port {port} is set twice ({seen[port]} and {setting}); give {setting} another "
                f"port in {data_dir / 'tradeops.toml'} (or {env})"
            )
        seen[port] = setting
        if _taken(host, port):
            raise PortInUse(
                f"port {port} ({host}, {setting}) is already in use by another process; set "
                f"{setting} to a free port in {data_dir / 'tradeops.toml'} (or {env})"
            )


class EmbeddedStack:
    """Starts, supervises and stops the whole system in one data directory."""

    def __init__(
        self,
        settings: Settings,
        agents: Sequence[Identity] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.agents = list(available_agents() if agents is None else agents)
        self.progress = progress or (lambda _msg: None)
        self.layout = nats_layout(settings)
        self.database_url = settings.database_url
        self.embedded_db = settings.database_url is None
        self.components: dict[str, Supervised] = {}
        self._pg: Any = None
        self._state: StackPhase = "starting"
        self._writer: asyncio.Task[None] | None = None
        self._outcomes: OutcomeService | None = None
        self._storage: StorageExporter | None = None
        self._started_at: float | None = None
        self.ready_after_s: float | None = None
        """Seconds from `start()` until `wait_ready()` saw every agent ready."""

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every part; raises `PortInUse` before starting anything when a port is taken.

        Cancelling it (a signal) leaves nothing `stop()` cannot stop: a Postgres being started
        in a thread is waited for, so it is registered before `stop()` runs."""
        check_ports(self.settings)
        self._started_at = asyncio.get_running_loop().time()
        run_dir(self.data_dir).mkdir(parents=True, exist_ok=True)
        write_pid(self.data_dir)
        self._writer = asyncio.create_task(self._write_state_forever())
        self.progress("certificates")
        _, created = init_certs(self.data_dir)
        if created:
            log.info("created %d certificate and key files", len(created))
        await self._start_nats()
        if self.embedded_db:
            self.progress("postgres (embedded)")
            starting = asyncio.ensure_future(asyncio.to_thread(self._start_postgres))
            try:
                self.database_url = await asyncio.shield(starting)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await starting  # let the thread finish, so stop() stops what it started
                raise
        self.progress("provisioning streams and consumers")
        async with connected(self.settings, Identity.OPS, servers=[self.layout.url]) as nc:
            await provision(nc.jetstream(), self.settings.stream_replicas, self.settings.storage)
        self.progress("outcome service (intent.outcome)")
        self._outcomes = await serve_outcomes(self.layout.url, self.settings.certs_dir)
        self.progress("storage metrics")
        self._storage = await serve_storage_metrics(
            self.layout.url,
            self.settings.certs_dir,
            self.settings.health_host,
            self.settings.storage.metrics_port,
            self.settings.storage.alert_at_percent,
        )
        for agent in self.agents:
            self.progress(f"agent {agent}")
            await self._start_agent(agent)
        self._state = "running"
        self.write_state()

    async def _start_nats(self) -> None:
        self.progress("nats-server (JetStream, mutual TLS)")
        short = unbacked_bytes(self.layout.store_dir, self.layout.max_file_store)
        if short:
            log.warning(
                "the [storage] limits reserve %d bytes in %s but the disk has %d bytes less "
                "free: a stream could fill the disk before its limit; lower the limits",
                self.layout.max_file_store,
                self.layout.store_dir,
                short,
            )
        config = write_config(self.layout, self.data_dir / "nats" / "nats.conf")
        server = Supervised(
            "nats-server",
            [str(nats_server_binary()), "-c", str(config)],
            self.data_dir / "logs" / "nats-server.log",
            health_url=f"{self.layout.monitor_url}/healthz",
        )
        self.components[server.name] = server
        await server.start()
        await wait_healthy(self.layout)

    def _start_postgres(self) -> str:
        from pgserver import get_server  # type: ignore[attr-defined]  # noqa: PLC0415

        pgdata = self.data_dir / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        self._pg = get_server(pgdata, cleanup_mode="stop")
        return str(self._pg.get_uri())

    async def _start_agent(self, agent: Identity) -> None:
        port = self.settings.health_ports[agent]
        env = {
            "TRADEOPS_DATA_DIR": str(self.data_dir),
            "TRADEOPS_NATS_PORT": str(self.settings.nats_port),
        }
        if self.database_url:
            env["TRADEOPS_DATABASE_URL"] = self.database_url
        proc = Supervised(
            str(agent),
            [
                sys.executable,
                "-m",
                "ops.cli",
                "agent",
                "run",
                str(agent),
                "--data-dir",
                str(self.data_dir),
            ],
            self.data_dir / "logs" / f"{agent}.log",
            env=env,
            health_url=f"http://{self.settings.health_host}:{port}",
        )
        self.components[proc.name] = proc
        await proc.start()

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Wait until every agent's /readyz answers 200; raises `AgentsNotReady` naming the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = {a: f"{self.components[str(a)].health_url}/readyz" for a in self.agents}
        while pending:
            for agent, url in list(pending.items()):
                if await asyncio.to_thread(http_ok, url):
                    self.progress(f"{agent} ready")
                    del pending[agent]
            if not pending and self._started_at is not None:
                self.ready_after_s = loop.time() - self._started_at
            if pending and loop.time() > deadline:
                tails = "\n".join(self._log_tail(str(a)) for a in pending)
                raise AgentsNotReady(sorted(str(a) for a in pending), timeout_s, tails)
            await asyncio.sleep(0.2)

    @contextlib.asynccontextmanager
    async def running(self, ready_timeout_s: float = 180.0) -> AsyncIterator[EmbeddedStack]:
        """Start the stack, wait until every agent is ready, and stop it on the way out."""
        try:
            await self.start()
            await self.wait_ready(timeout_s=ready_timeout_s)
            yield self
        finally:
            await self.stop()

    def _log_tail(self, name: str, lines: int = 15) -> str:
        comp = self.components.get(name)
        if comp is None or not comp.log_path.exists():
            return f"({name}: no log)"
        tail = comp.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- last lines of {comp.log_path} ---\n" + "\n".join(tail)

    # -- state ---------------------------------------------------------------------------------

    def describe(self) -> StackState:
        return StackState(
            pid=os.getpid(),
            state=self._state,
            updated_at=datetime.now(UTC),
            data_dir=self.data_dir,
            nats=NatsEndpoints(url=self.layout.url, monitor_url=self.layout.monitor_url),
            database=DatabaseEndpoint(url=self.database_url, embedded=self.embedded_db),
            components={name: c.describe() for name, c in self.components.items()},
        )

    def write_state(self) -> None:
        write_state(self.data_dir, self.describe())

    async def _write_state_forever(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.write_state()
            await asyncio.sleep(0.5)

    # -- stop ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop agents first (they drain), then nats-server, then Postgres. No orphans."""
        self._state = "stopping"
        self.write_state()
        agents = [c for n, c in self.components.items() if n != "nats-server"]
        await asyncio.gather(*(c.stop() for c in agents))
        if self._outcomes is not None:
            await self._outcomes.stop()
            self._outcomes = None
        if self._storage is not None:
            await self._storage.stop()
            self._storage = None
        if "nats-server" in self.components:
            await self.components["nats-server"].stop()
        if self._pg is not None:
            await asyncio.to_thread(self._pg.cleanup)
            self._pg = None
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._state = "stopped"
        self.write_state()
        clear_pid(self.data_dir)
