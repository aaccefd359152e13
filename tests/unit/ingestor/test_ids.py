"""agents.ingestor.ids: a submission's id when it names none, keyed by the ingestor's secret."""

from __future__ import annotations

import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agents.ingestor.ids import assigned_intent_id, assignment_key, load_assignment_key
from contracts import topology as t
from contracts.base import EVENT_NAMESPACE, is_submission_ref

KEY = assignment_key(Ed25519PrivateKey.generate())
SEQS = st.integers(min_value=1, max_value=2**62 - 1)


@given(SEQS)
def test_the_same_submission_gets_the_same_id_every_time(seq: int) -> None:
    assert assigned_intent_id(KEY, seq) == assigned_intent_id(KEY, seq)


@given(SEQS)
def test_the_id_is_a_version_8_uuid_and_never_a_submissions_public_name(seq: int) -> None:
    iid = assigned_intent_id(KEY, seq)
    assert (iid.version, iid.variant) == (8, uuid.RFC_4122)
    assert not is_submission_ref(iid)
    assert iid != uuid.uuid5(EVENT_NAMESPACE, f"{t.SUBMISSIONS}:{seq}")


def test_another_key_gives_other_ids() -> None:
    other = assignment_key(Ed25519PrivateKey.generate())
    assert all(assigned_intent_id(KEY, q) != assigned_intent_id(other, q) for q in range(1, 100))


def test_distinct_sequences_get_distinct_ids() -> None:
    assert len({assigned_intent_id(KEY, q) for q in range(1, 10_001)}) == 10_000


def test_the_key_is_derived_from_the_signing_key_file_and_is_not_its_seed(tmp_path: Path) -> None:
    signing = Ed25519PrivateKey.generate()
    path = tmp_path / "ingestor-signing-key.pem"
    path.write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert load_assignment_key(path) == assignment_key(signing)
    assert load_assignment_key(path) != signing.private_bytes_raw()
