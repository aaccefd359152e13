"""`bus` exports each name from its home module, loaded on first use, never a module object."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types

import bus


def test_every_exported_name_is_what_its_module_defines_even_after_every_submodule_loads() -> None:
    for info in pkgutil.iter_modules(bus.__path__):
        importlib.import_module(f"bus.{info.name}")  # may set bus.<module> attributes

    for name in bus.__all__:
        value = getattr(bus, name)
        assert not isinstance(value, types.ModuleType), name
        defined_in = [
            m for m in sys.modules.values()
            if m is not None and m.__name__.startswith("bus.") and vars(m).get(name) is value
        ]  # fmt: skip
        assert defined_in, f"{name} is not what any bus module defines"


def test_importing_one_name_does_not_load_the_consumer_runtime() -> None:
    probe = "import sys\nfrom bus import Verifier\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(done.stdout.split())
    assert "bus.signing" in loaded
    assert not {"bus.runtime", "bus.pull", "prometheus_client"} & loaded
