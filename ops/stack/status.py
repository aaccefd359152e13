"""What `tradeops status` reports: the stack's components, their health, the trading state."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

from agents.settings import Settings
from bus import Credentials, connect
from bus.trading_state import latest_control
from contracts import Identity, TradingState, TradingStateChanged
from ops.stack.embedded import state_file


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _get_json(url: str) -> tuple[int, dict[str, Any] | None]:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")
    except (OSError, ValueError):
        return 0, None


async def trading_state(settings: Settings, url: str) -> str:
    """Read the trading state from the CONTROL stream as ops; `unknown` if unreachable."""
    try:
        nc = await connect(
            url,
            Credentials(Identity.OPS, settings.certs_dir),
            allow_reconnect=False,
            max_reconnect_attempts=1,  # nats-py also applies it to the first connect
            connect_timeout_s=2.0,
        )
    except Exception:
        return "unknown"
    try:
        latest = await asyncio.wait_for(latest_control(nc.jetstream()), 3.0)
        if latest is None:
            return str(TradingState.ACTIVE)
        return str(TradingStateChanged.model_validate_json(latest[1]).state)
    except Exception:
        return "unknown"
    finally:
        await nc.close()


async def collect_status(settings: Settings) -> dict[str, Any]:
    """Return the status document of the stack in `settings.data_dir`."""
    path: Path = state_file(settings.data_dir)
    if not path.exists():
        return {"running": False, "data_dir": str(settings.data_dir.resolve()), "components": {}}
    doc: dict[str, Any] = json.loads(path.read_text())
    running = pid_alive(doc.get("pid")) and doc.get("state") in {"starting", "running"}
    doc["running"] = running
    for name, comp in doc.get("components", {}).items():
        alive = running and pid_alive(comp.get("pid"))
        comp["alive"] = alive
        if not alive and comp.get("state") == "running":
            comp["state"] = "exited" if running else "stopped"
        if alive and comp.get("health_url") and name != "nats-server":
            code, body = await asyncio.to_thread(_get_json, f"{comp['health_url']}/readyz")
            comp["ready"] = code == 200
            comp["ready_reasons"] = (body or {}).get(
                "reasons", [] if code == 200 else ["no answer"]
            )
    doc["trading_state"] = (
        await trading_state(settings, doc["nats"]["url"]) if running else "unknown"
    )
    return doc


def render_status(doc: dict[str, Any]) -> str:
    """Return the human-readable status table."""
    if not doc.get("running"):
        lines = [f"tradeops: not running (data dir {doc.get('data_dir')})"]
    else:
        lines = [
            f"tradeops: {doc['state']} (supervisor pid {doc['pid']}, data dir {doc['data_dir']})",
            f"nats:          {doc['nats']['url']}  (monitoring {doc['nats']['monitor_url']})",
            f"database:      {doc['database']['url']}"
            + ("  (embedded)" if doc["database"]["embedded"] else ""),
            f"trading state: {doc['trading_state']}",
            "",
            f"{'component':<12} {'pid':>7} {'state':<11} {'ready':<6} {'restarts':>8}  "
            f"{'last exit':<28} health",
        ]
    for name, comp in doc.get("components", {}).items():
        last = comp.get("last_exit") or {}
        last_text = f"code {last['code']} at {last['at'][11:19]}" if last else "-"
        ready = {True: "yes", False: "no"}.get(comp.get("ready"), "-")
        lines.append(
            f"{name:<12} {comp.get('pid') or '-':>7} {comp.get('state', '-'):<11} {ready:<6} "
            f"{comp.get('restarts', 0):>8}  {last_text:<28} {comp.get('health_url') or '-'}"
        )
    return "\n".join(lines)
