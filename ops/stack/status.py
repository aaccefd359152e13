"""What `tradeops status` reports: the stack's components, their health, the trading state."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from agents.settings import Settings
from bus.signing import Verifier
from bus.trading_state import stored_state
from contracts import Identity
from ops.client import connected
from ops.stack.state import pid_alive, read_state

TRADING_STATE_TIMEOUT_S = 3.0


def _get_json(url: str) -> tuple[int, dict[str, Any] | None]:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read() or b"null")
        except (OSError, ValueError):
            return int(exc.code), None
    except (OSError, ValueError):
        return 0, None


def readiness(health_url: str) -> tuple[bool, list[str]]:
    """Whether an agent's /readyz answers 200, and the reasons it gives when not."""
    code, body = _get_json(f"{health_url}/readyz")
    reasons = (body or {}).get("reasons") if isinstance(body, dict) else None
    if not isinstance(reasons, list):
        reasons = [] if code == 200 else ["no answer"]
    return code == 200, [str(r) for r in reasons]


async def trading_state(settings: Settings, url: str) -> str:
    """The trading state by the agents' own rule over the CONTROL stream (`contracts.control`),
    read as ops; `unknown` if unreachable."""
    try:
        async with asyncio.timeout(TRADING_STATE_TIMEOUT_S * 2):
            async with connected(
                settings, Identity.OPS, servers=[url], timeout_s=TRADING_STATE_TIMEOUT_S
            ) as nc:
                state = await stored_state(nc.jetstream(), Verifier.from_dir(settings.certs_dir))
    except Exception:  # unreachable, no certificates, a half-started server: not known
        return "unknown"
    return str(state)


async def collect_status(settings: Settings) -> dict[str, Any]:
    """Return the status document of the stack in `settings.data_dir`.

    Raises `CorruptRunFile` when the run file is there but unreadable."""
    state = read_state(settings.data_dir)
    if state is None:
        return {"running": False, "data_dir": str(settings.data_dir.resolve()), "components": {}}
    doc: dict[str, Any] = state.model_dump(mode="json")
    running = pid_alive(state.pid) and state.state in {"starting", "running"}
    doc["running"] = running
    for name, comp in doc["components"].items():
        alive = running and pid_alive(comp.get("pid"))
        comp["alive"] = alive
        if not alive and comp.get("state") == "running":
            comp["state"] = "exited" if running else "stopped"
        if alive and comp.get("health_url") and name != "nats-server":
            comp["ready"], comp["ready_reasons"] = await asyncio.to_thread(
                readiness, comp["health_url"]
            )
    doc["trading_state"] = await trading_state(settings, state.nats.url) if running else "unknown"
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
