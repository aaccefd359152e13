"""Everything that touches NATS: identities, provisioning, the consumer runtime, signatures.

The names below are loaded on first use (PEP 562): `from bus import Verifier` imports
`bus.signing` only, so a one-shot command does not load the consumer runtime and its metrics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Two names are also names of their modules: bound eagerly, so that importing `bus.connect` or
# `bus.provision` (which sets the package attribute to the module) cannot shadow the function.
from bus.connect import connect
from bus.provision import provision

if TYPE_CHECKING:
    from bus.deadletter import MaxDeliveriesAdvisory, dead_letter
    from bus.errors import BusError, PermissionDenied, Rejected, Transient
    from bus.exhausted import decode_advisory, exhausted_handler
    from bus.handling import BatchHandler, Delivery, Outcome, RuntimeStats, one_by_one
    from bus.identity import Credentials
    from bus.provision import ProvisionReport
    from bus.publisher import Emit, Publisher, PublishFailed
    from bus.runtime import ConsumerRuntime
    from bus.signing import SignatureStatus, Signer, Verifier
    from bus.trading_state import TradingStateWatch

_HOME: dict[str, str] = {
    "MaxDeliveriesAdvisory": "bus.deadletter",
    "dead_letter": "bus.deadletter",
    "BusError": "bus.errors",
    "PermissionDenied": "bus.errors",
    "Rejected": "bus.errors",
    "Transient": "bus.errors",
    "decode_advisory": "bus.exhausted",
    "exhausted_handler": "bus.exhausted",
    "Credentials": "bus.identity",
    "ProvisionReport": "bus.provision",
    "Emit": "bus.publisher",
    "Publisher": "bus.publisher",
    "PublishFailed": "bus.publisher",
    "BatchHandler": "bus.handling",
    "ConsumerRuntime": "bus.runtime",
    "Delivery": "bus.handling",
    "Outcome": "bus.handling",
    "RuntimeStats": "bus.handling",
    "one_by_one": "bus.handling",
    "SignatureStatus": "bus.signing",
    "Signer": "bus.signing",
    "Verifier": "bus.signing",
    "TradingStateWatch": "bus.trading_state",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "BatchHandler",
    "BusError",
    "ConsumerRuntime",
    "Credentials",
    "Delivery",
    "Emit",
    "MaxDeliveriesAdvisory",
    "Outcome",
    "PermissionDenied",
    "ProvisionReport",
    "PublishFailed",
    "Publisher",
    "Rejected",
    "RuntimeStats",
    "SignatureStatus",
    "Signer",
    "TradingStateWatch",
    "Transient",
    "Verifier",
    "connect",
    "dead_letter",
    "decode_advisory",
    "exhausted_handler",
    "one_by_one",
    "provision",
]
