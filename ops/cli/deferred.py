"""Keep nats-py from loading aiohttp in the command line.

nats-py imports aiohttp when `nats.aio.transport` loads, for its WebSocket transport, which
tradeops never uses (its URLs are `tls://`); loading aiohttp costs about 0.2 s, most of a short
command's start-up. `skip_websocket_transport` installs an import hook that, only while
`nats.aio.transport` itself executes, answers its `import aiohttp` with ModuleNotFoundError — the
case nats-py handles (`aiohttp = None`: no WebSocket transport). Anything else that imports
aiohttp, before or after (an agent's health endpoint under `tradeops agent run`), gets the real
one. If aiohttp is loaded already, nothing changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

TRANSPORT = "nats.aio.transport"
HIDDEN = ("aiohttp", "multidict")


class _SkipWebsocketTransport(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.hiding = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if self.hiding and fullname.split(".", maxsplit=1)[0] in HIDDEN:
            raise ModuleNotFoundError(f"{fullname} skipped for {TRANSPORT}", name=fullname)
        if fullname != TRANSPORT:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        finder = self

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                finder.hiding = True
                try:
                    loader.exec_module(module)
                finally:
                    finder.hiding = False

        spec.loader = _Loader()
        return spec


def skip_websocket_transport() -> None:
    """Install the hook (once), unless nats-py's transport or aiohttp is loaded already."""
    if TRANSPORT in sys.modules or any(name in sys.modules for name in HIDDEN):
        return
    if not any(isinstance(f, _SkipWebsocketTransport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipWebsocketTransport())
