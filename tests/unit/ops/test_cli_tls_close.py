"""Closing a TLS connection to nats-server prints nothing: the server's data arriving after our
close_notify is ignored, and nothing else is."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import pytest

from ops.client import TLS_CLOSE_NOISE, _quiet_tls_close, is_tls_close_noise


def _noise() -> ssl.SSLError:
    exc = ssl.SSLError(1, f"[SSL: {TLS_CLOSE_NOISE}] application data after close notify")
    exc.reason = TLS_CLOSE_NOISE
    return exc


def test_only_data_after_close_notify_is_noise() -> None:
    other = ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    other.reason = "CERTIFICATE_VERIFY_FAILED"

    assert is_tls_close_noise(_noise())
    assert not is_tls_close_noise(other)
    assert not is_tls_close_noise(ConnectionResetError(TLS_CLOSE_NOISE))
    assert not is_tls_close_noise(None)


async def test_the_loop_ignores_the_noise_and_passes_on_every_other_error() -> None:
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _lp, context: seen.append(context))
    try:
        _quiet_tls_close(loop)
        _quiet_tls_close(loop)  # a second connection: installed once
        loop.call_exception_handler({"message": "Task exception", "exception": _noise()})
        loop.call_exception_handler({"message": "boom", "exception": RuntimeError("x")})
    finally:
        loop.set_exception_handler(None)

    assert [c["message"] for c in seen] == ["boom"]


def test_the_bus_log_line_for_the_noise_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    _quiet_tls_close(loop)
    loop.close()
    log = logging.getLogger("tradeops.bus")
    with caplog.at_level(logging.WARNING, logger="tradeops.bus"):
        log.warning("nats error for ops: %s", _noise())
        log.warning("nats error for ops: %s", "nats: timeout")

    assert [r.getMessage() for r in caplog.records] == ["nats error for ops: nats: timeout"]
