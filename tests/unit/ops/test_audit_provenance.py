"""Who may have said what, the signature pool and its cache, replay windows, the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.signing import SignatureStatus, Signer, Verifier
from contracts import Identity
from contracts.kinds import owners_of, subject_matches
from ops.audit.cache import VerifiedCache
from ops.audit.policy import Provenance, provenance_problem
from ops.audit.report import AuditReport, Check
from ops.audit.signatures import SignatureChecker
from ops.audit.window import ReplayWindow, parse_time

VALID = SignatureStatus.VALID


def test_subjects_are_owned_as_the_topology_says() -> None:
    assert owners_of("order.filled.AAPL.i-1") == {Identity.EXECUTOR}
    assert owners_of("intent.submitted.BTC-USD") == {Identity.CLIENT}
    assert owners_of("dlq.ledger.i-1") == {Identity.LEDGER}
    assert owners_of("dlq.retried.i-1") == {Identity.OPS}
    assert owners_of("control.kill") == {Identity.OPS}
    assert owners_of("nobody.home") == frozenset()
    assert subject_matches("a.>", "a.b.c") and not subject_matches("a.*", "a.b.c")


def test_unsigned_submission_is_trusted_but_unsigned_fill_is_not() -> None:
    assert provenance_problem(Provenance("intent.submitted.AAPL", None, None, None)) is None
    problem = provenance_problem(Provenance("order.filled.AAPL.i-1", None, None, None))
    assert problem is not None and problem.startswith("missing signature")


def test_invalid_signature_is_named() -> None:
    problem = provenance_problem(
        Provenance("order.filled.AAPL.i-1", SignatureStatus.INVALID, "executor", "executor")
    )
    assert problem is not None and "signature invalid" in problem


def test_signer_must_publish_the_subject_and_be_the_producer() -> None:
    wrong_subject = provenance_problem(
        Provenance("risk.approved.AAPL.i-1", VALID, "analyst", "analyst")
    )
    assert wrong_subject == "signed by analyst, but risk.approved.AAPL.i-1 is published by risk"
    wrong_producer = provenance_problem(
        Provenance("risk.approved.AAPL.i-1", VALID, "risk", "ledger")
    )
    assert wrong_producer is not None and "producer field says 'ledger'" in wrong_producer


def test_ops_repair_is_trusted_only_when_a_retry_record_vouches() -> None:
    repair = Provenance("order.filled.AAPL.i-1", VALID, "ops", "executor")
    assert provenance_problem(repair) is not None
    assert provenance_problem(Provenance(**{**repair.__dict__, "vouched": True})) is None


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Signer, Path]:
    private = Ed25519PrivateKey.generate()
    for identity in (Identity.OPS, Identity.EXECUTOR):
        key = private if identity is Identity.OPS else Ed25519PrivateKey.generate()
        (tmp_path / f"{identity}-signing-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (tmp_path / f"{identity}-signing.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    signer = Signer.from_file(Identity.EXECUTOR, tmp_path / "executor-signing-key.pem")
    return signer, tmp_path


async def test_checker_verifies_each_and_a_second_audit_takes_them_from_the_cache(
    keys: tuple[Signer, Path],
) -> None:
    signer, certs = keys
    cache_file = certs / "cache.bin"
    messages = [(f"order.filled.S{i}.i-{i}", b'{"n": %d}' % i) for i in range(5)]

    async def audit(tamper: bool = False) -> SignatureChecker:
        checker = SignatureChecker(
            Verifier.from_dir(certs), VerifiedCache.open(certs, cache_file), None, chunk=2
        )
        for seq, (subject, data) in enumerate(messages, start=1):
            headers = signer.headers(subject, data)
            await checker.add(("ORDERS", seq), subject, data + (b" " if tamper else b""), headers)
        await checker.finish()
        checker.cache.save()
        return checker

    first = await audit()
    assert {status for status, _ in first.results.values()} == {VALID}
    assert (first.verified, first.cached) == (5, 0)
    second = await audit()
    assert (second.verified, second.cached) == (0, 5)
    forged = await audit(tamper=True)
    assert forged.cached == 0
    assert {status for status, _ in forged.results.values()} == {SignatureStatus.INVALID}


def test_cache_entries_do_not_survive_a_key_change(keys: tuple[Signer, Path]) -> None:
    _, certs = keys
    cache_file = certs / "cache.bin"
    cache = VerifiedCache.open(certs, cache_file)
    cache.add(cache.digest("s", b"p", "executor", "sig"))
    cache.save()
    assert VerifiedCache.open(certs, cache_file).loaded == 1
    (certs / "executor-signing.pub").write_bytes(b"rotated")
    assert VerifiedCache.open(certs, cache_file).loaded == 0


def test_times_are_iso_or_ages() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    assert parse_time("2025-06-01T10:00:00Z") == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert parse_time("2025-06-01") == datetime(2025, 6, 1, tzinfo=UTC)
    assert parse_time("90m", now=now) == now - timedelta(minutes=90)
    assert parse_time("7d", now=now) == now - timedelta(days=7)
    with pytest.raises(ValueError, match="age such as"):
        parse_time("yesterday")


def test_window_is_a_time_or_a_sequence() -> None:
    assert ReplayWindow().full
    origin = datetime(2025, 6, 2, tzinfo=UTC)
    window = ReplayWindow(from_seq=5)
    assert window.read_args("SUBMISSIONS", origin) == {"start_seq": 5}
    assert window.read_args("INTENTS", origin) == {"start_time": origin}
    assert window.read_args("ORDERS", origin) == {"start_time": origin}
    assert window.describe() == "from SUBMISSIONS #5 (the other streams from its time)"
    assert ReplayWindow().read_args("ORDERS") == {"start_seq": 1}
    with pytest.raises(ValueError, match="not both"):
        ReplayWindow(since=datetime.now(UTC), from_seq=3)


def test_pending_is_a_warning_unless_strict() -> None:
    relaxed, strict = AuditReport("from the start"), AuditReport("from the start", strict=True)
    for report in (relaxed, strict):
        report.warn(Check.TERMINAL, "pending: approved, not yet executed", intent_id="i-1")
    assert relaxed.ok and len(relaxed.warnings) == 1
    assert not strict.ok and strict.discrepancies[0].what.startswith("pending")
    strict.error(Check.SIGNATURE, "signature invalid", stream="ORDERS", seq=7, intent_id="i-2")
    text = strict.render()
    assert "[signature] ORDERS #7 intent i-2: signature invalid" in text
    assert text.endswith("result: FAIL (2 discrepancies)")
