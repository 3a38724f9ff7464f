"""``vqual sign BUNDLE``: who may sign what, and what a signature binds to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qualification.errors import (
    EvidenceIncompleteError,
    EvidenceInvalidError,
    KeyFileError,
    TrustError,
)
from qualification.evidence.verify import verify_bundle
from qualification.review.esign import sign_bundle
from qualification.review.signed import load_trust, open_personal_signer
from qualification.signing import TrustStore, create_key
from tests.unit.evidence.evidence_testlib import CHANGE, build_bundle, make_keys
from tests.unit.review.reviewlib import PASS, Person, add_person


def _setup(tmp_path: Path) -> tuple[Path, Path, Person, Person]:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state)
    build_bundle(tmp_path / "ev", keys)
    bundle = tmp_path / "ev" / CHANGE / "20260301T100000Z-a1b2c3"
    reviewer = add_person(state, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    return state, bundle, reviewer, approver


def test_reviewed_then_approved_bundle_verifies_with_both_signatures(tmp_path: Path) -> None:
    state, bundle, reviewer, approver = _setup(tmp_path)
    trust = load_trust(state)
    first = sign_bundle(bundle, reviewer.signer(), trust, "reviewed", "read every result")
    second = sign_bundle(bundle, approver.signer(), trust, "approved", None)
    assert second.seq == first.seq + 1
    result = verify_bundle(bundle, trust)
    assert result.status == "valid", result.problems
    shown = [(s["meaning"], s["name"], s["comment"], s["roles"]) for s in result.signatures]
    assert shown == [
        ("reviewed", "Rolf Reviewer", "read every result", ["reviewer"]),
        ("approved", "Ada Approver", None, ["approver"]),
    ]
    assert all(s["seal"] == result.seal_digest == first.seal for s in result.signatures)
    assert all(s["time"].endswith("Z") for s in result.signatures)


def test_the_executor_may_not_approve_its_own_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, executor_roles=("executor", "approver"))
    build_bundle(tmp_path / "ev", keys)
    bundle = tmp_path / "ev" / CHANGE / "20260301T100000Z-a1b2c3"
    with pytest.raises(TrustError, match="executed this run"):
        sign_bundle(bundle, keys.executor, load_trust(state), "approved")


def test_the_initiator_may_not_approve_the_run(tmp_path: Path) -> None:
    state, bundle, _, _ = _setup(tmp_path)
    # build_bundle's runs are initiated by "jane.doe"; she also holds an approver key.
    jane = add_person(state, "Jane Doe", "jane.doe", ["approver", "reviewer"])
    trust = load_trust(state)
    with pytest.raises(TrustError, match="initiated this run"):
        sign_bundle(bundle, jane.signer(), trust, "approved")
    # Reviewing her own run is not forbidden; approving is.
    sign_bundle(bundle, jane.signer(), trust, "reviewed")


def test_a_key_without_the_role_is_refused(tmp_path: Path) -> None:
    state, bundle, reviewer, approver = _setup(tmp_path)
    trust = load_trust(state)
    with pytest.raises(TrustError, match="does not hold the approver role"):
        sign_bundle(bundle, reviewer.signer(), trust, "approved")
    with pytest.raises(TrustError, match="does not hold the approver role"):
        sign_bundle(bundle, reviewer.signer(), trust, "rejected")
    with pytest.raises(TrustError, match="does not hold the reviewer role"):
        sign_bundle(bundle, approver.signer(), trust, "reviewed")


def test_untrusted_expired_and_revoked_keys_are_refused(tmp_path: Path) -> None:
    state, bundle, _, _ = _setup(tmp_path)
    stranger = add_person(state, "Sam Stranger", "sam@example.com", ["approver"], trusted=False)
    now = datetime.now(UTC)
    expired = add_person(
        state,
        "Ed Expired",
        "ed@example.com",
        ["approver"],
        valid_from=now - timedelta(days=30),
        valid_until=now - timedelta(days=1),
    )
    revoked = add_person(state, "Rex Revoked", "rex@example.com", ["approver"])
    store = TrustStore.load(state / "trust.yaml")
    store.revoke(revoked.keyid, now - timedelta(minutes=1))
    store.save()
    trust = load_trust(state)
    before = (bundle / "records.jsonl").read_bytes()
    with pytest.raises(TrustError, match="not in the trust store"):
        sign_bundle(bundle, stranger.signer(), trust, "approved")
    with pytest.raises(TrustError, match="expired"):
        sign_bundle(bundle, expired.signer(), trust, "approved")
    with pytest.raises(TrustError, match="revoked"):
        sign_bundle(bundle, revoked.signer(), trust, "approved")
    assert (bundle / "records.jsonl").read_bytes() == before, "a refusal writes nothing"


def test_approving_an_incomplete_or_invalid_bundle_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state)
    build_bundle(tmp_path / "ev", keys, "20260301T100000Z-000001", results=3, seal=False)
    build_bundle(tmp_path / "ev", keys, "20260301T100000Z-000002")
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver", "reviewer"])
    trust = load_trust(state)
    with pytest.raises(EvidenceIncompleteError, match="did not finish"):
        sign_bundle(
            tmp_path / "ev" / CHANGE / "20260301T100000Z-000001",
            approver.signer(),
            trust,
            "approved",
        )
    edited = tmp_path / "ev" / CHANGE / "20260301T100000Z-000002"
    (edited / "spec.yaml").write_bytes(b"apiVersion: vqual/v1\nkind: Spec\ntests: [x]\n")
    for meaning in ("approved", "reviewed"):
        with pytest.raises(EvidenceInvalidError, match="does not verify: spec.yaml"):
            sign_bundle(edited, approver.signer(), trust, meaning)
    # Rejecting broken evidence is allowed: that is what rejection is for.
    done = sign_bundle(edited, approver.signer(), trust, "rejected", "spec.yaml was edited")
    assert done.meaning == "rejected"


def test_a_signature_copied_onto_another_bundle_is_detected(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state)
    build_bundle(tmp_path / "ev", keys, "20260301T100000Z-000001")
    build_bundle(tmp_path / "ev", keys, "20260302T100000Z-000002")
    bundle = tmp_path / "ev" / CHANGE / "20260301T100000Z-000001"
    other = tmp_path / "ev" / CHANGE / "20260302T100000Z-000002"
    approver = add_person(state, "Ada Approver", "ada@example.com", ["approver"])
    trust = load_trust(state)
    sign_bundle(bundle, approver.signer(), trust, "approved")
    stolen = (bundle / "records.jsonl").read_bytes().splitlines(keepends=True)[-1]
    with open(other / "records.jsonl", "ab") as fh:
        fh.write(stolen)
    result = verify_bundle(other, trust)
    assert result.status == "invalid"
    text = "\n".join(result.problems)
    assert "does not sign this bundle's seal digest" in text
    assert "chain broken" in text


def test_signing_needs_the_passphrase_protected_key_and_its_passphrase(tmp_path: Path) -> None:
    _, _, reviewer, _ = _setup(tmp_path)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        open_personal_signer(reviewer.key_file, lambda: b"not the passphrase")
    service = tmp_path / "service.pem"
    create_key(service, passphrase=None, name="svc", identity="svc")
    with pytest.raises(KeyFileError, match="not passphrase-protected"):
        open_personal_signer(service, lambda: PASS)
    assert open_personal_signer(reviewer.key_file, lambda: PASS).keyid == reviewer.keyid
