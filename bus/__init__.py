"""Everything that touches NATS: identities, provisioning, the consumer runtime, signatures."""

from bus.connect import connect
from bus.deadletter import MaxDeliveriesAdvisory, dead_letter
from bus.errors import BusError, PermissionDenied, Rejected, Transient
from bus.exhausted import decode_advisory, exhausted_handler
from bus.identity import Credentials
from bus.provision import ProvisionReport, provision
from bus.publisher import Emit, Publisher, PublishFailed
from bus.runtime import (
    BatchHandler,
    ConsumerRuntime,
    Delivery,
    Outcome,
    RuntimeStats,
    one_by_one,
)
from bus.signing import SignatureStatus, Signer, Verifier
from bus.trading_state import TradingStateWatch

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
