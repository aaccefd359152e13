"""The audit: replay the streams and check signatures, chains, the ledger and its balances."""

from contracts.kinds import owners_of
from ops.audit.cache import VerifiedCache
from ops.audit.chains import Verdict, evaluate
from ops.audit.policy import provenance_problem
from ops.audit.report import AuditReport, Check, Finding
from ops.audit.signatures import Parallelism
from ops.audit.trail import IntentTrail, find_trail
from ops.audit.verify import AUDIT_STREAMS, AuditOptions, Progress, run_audit
from ops.audit.window import ReplayWindow, parse_time

__all__ = [
    "AUDIT_STREAMS",
    "AuditOptions",
    "AuditReport",
    "Check",
    "Finding",
    "IntentTrail",
    "Parallelism",
    "Progress",
    "ReplayWindow",
    "Verdict",
    "VerifiedCache",
    "evaluate",
    "find_trail",
    "owners_of",
    "parse_time",
    "provenance_problem",
    "run_audit",
]
