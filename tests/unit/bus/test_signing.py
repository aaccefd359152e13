"""bus.signing: a signature binds the signer, the subject and the bytes; anything else fails."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from bus.headers import SIGNATURE, SIGNER
from bus.identity import CertPaths
from bus.signing import SignatureStatus, Signer, Verifier
from contracts import Identity

SUBJECT = "risk.approved.AAPL.5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21"
BODY = b'{"intent_id": "5b0c7a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21", "quantity": "10"}'
RISK_KEY = Ed25519PrivateKey.generate()
ANALYST_KEY = Ed25519PrivateKey.generate()
VERIFIER = Verifier({"risk": RISK_KEY.public_key(), "analyst": ANALYST_KEY.public_key()})


def signed(key: Ed25519PrivateKey = RISK_KEY, identity: Identity = Identity.RISK) -> dict[str, str]:
    return Signer(identity, key).headers(SUBJECT, BODY)


def test_a_signed_event_verifies_as_its_signer() -> None:
    assert VERIFIER.check(SUBJECT, BODY, signed()) == (SignatureStatus.VALID, "risk")


def test_the_headers_name_the_signer_and_carry_a_base64_ed25519_signature() -> None:
    headers = signed()
    assert headers[SIGNER] == "risk"
    assert len(base64.b64decode(headers[SIGNATURE], validate=True)) == 64


def test_one_changed_byte_of_the_body_fails() -> None:
    tampered = BODY.replace(b'"10"', b'"90"')
    assert VERIFIER.check(SUBJECT, tampered, signed()) == (SignatureStatus.INVALID, "risk")


def test_the_same_bytes_replayed_onto_another_subject_fail() -> None:
    other = SUBJECT.replace("AAPL", "TSLA")
    assert VERIFIER.check(other, BODY, signed())[0] is SignatureStatus.INVALID


def test_a_signature_by_another_key_claiming_the_signer_fails() -> None:
    forged = signed(key=ANALYST_KEY, identity=Identity.RISK)  # analyst's key, risk's name
    assert VERIFIER.check(SUBJECT, BODY, forged) == (SignatureStatus.INVALID, "risk")


def test_a_valid_signature_under_a_changed_signer_name_fails() -> None:
    headers = {**signed(), SIGNER: "analyst"}
    assert VERIFIER.check(SUBJECT, BODY, headers) == (SignatureStatus.INVALID, "analyst")


def test_a_signer_without_a_known_key_is_unknown() -> None:
    headers = signed(key=Ed25519PrivateKey.generate(), identity=Identity.LEDGER)
    assert VERIFIER.check(SUBJECT, BODY, headers) == (SignatureStatus.UNKNOWN_SIGNER, "ledger")


@pytest.mark.parametrize(
    "headers",
    [None, {}, {SIGNER: "risk"}, {SIGNATURE: "AAAA"}, {SIGNER: "", SIGNATURE: "AAAA"}],
    ids=["none", "empty", "no-signature", "no-signer", "empty-signer"],
)
def test_a_missing_signer_or_signature_is_missing(headers: dict[str, str] | None) -> None:
    assert VERIFIER.check(SUBJECT, BODY, headers)[0] is SignatureStatus.MISSING


@pytest.mark.parametrize("garbage", ["not base64!", "AAAA", base64.b64encode(b"x" * 64).decode()])
def test_a_signature_that_is_not_one_is_invalid_not_an_exception(garbage: str) -> None:
    headers = {SIGNER: "risk", SIGNATURE: garbage}
    assert VERIFIER.check(SUBJECT, BODY, headers)[0] is SignatureStatus.INVALID


def test_keys_written_in_the_layout_sign_and_verify_across_files(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    key = Ed25519PrivateKey.generate()
    paths.signing_key(Identity.EXECUTOR).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths.verify_key(Identity.EXECUTOR).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    signer = Signer.from_file(Identity.EXECUTOR, paths.signing_key(Identity.EXECUTOR))
    verifier = Verifier.from_dir(tmp_path)
    headers = signer.headers(SUBJECT, BODY)
    assert verifier.check(SUBJECT, BODY, headers) == (SignatureStatus.VALID, "executor")
    # only the identities with a key in the directory are known
    assert verifier.check(SUBJECT, BODY, signed())[0] is SignatureStatus.UNKNOWN_SIGNER


def test_the_session_certs_sign_as_each_identity_and_verify_with_its_public_key(
    certs_dir: Path,
) -> None:
    paths, verifier = CertPaths(certs_dir), Verifier.from_dir(certs_dir)
    for identity in Identity:
        signer = Signer.from_file(identity, paths.signing_key(identity))
        headers = signer.headers(SUBJECT, BODY)
        assert verifier.check(SUBJECT, BODY, headers) == (SignatureStatus.VALID, str(identity))


def test_a_signing_key_file_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rsa-key.pem"
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        Signer.from_file(Identity.RISK, path)
