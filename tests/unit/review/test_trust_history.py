"""Trust store integrity: versions signed by a trust-admin; unsigned or tampered refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.errors import TrustError
from qualification.review.trust_history import (
    check_history,
    history,
    sign_trust_store,
    trusted_store,
)
from qualification.signing import TrustStore
from tests.unit.review.reviewlib import add_person


def test_bootstrap_then_signed_changes_are_accepted_with_their_version(tmp_path: Path) -> None:
    admin = add_person(tmp_path, "Tom Admin", "tom@example.com", ["trust-admin"])
    store, version = trusted_store(tmp_path, require_signed=False)
    assert version is None and admin.keyid in store.keys
    with pytest.raises(TrustError, match="is not signed"):
        trusted_store(tmp_path, require_signed=True)

    first = sign_trust_store(tmp_path, admin.signer(), "bootstrap")
    assert first.version == 1 and first.changes == (
        f"added Tom Admin <tom@example.com> {admin.keyid[:16]} as trust-admin",
    )
    assert trusted_store(tmp_path, require_signed=True)[1] == 1

    ada = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    # An unsigned change is refused until a trust-admin signs it.
    with pytest.raises(TrustError, match="unsigned change or tampering"):
        trusted_store(tmp_path, require_signed=False)
    second = sign_trust_store(tmp_path, admin.signer(), "Ada joins QA")
    assert second.version == 2 and any("added Ada Approver" in c for c in second.changes)
    store, version = trusted_store(tmp_path, require_signed=True)
    assert version == 2 and ada.keyid in store.keys
    assert [v.version for v in history(tmp_path)] == [1, 2]


def test_nobody_signs_their_own_admission(tmp_path: Path) -> None:
    admin = add_person(tmp_path, "Tom Admin", "tom@example.com", ["trust-admin"])
    sign_trust_store(tmp_path, admin.signer())
    mallory = add_person(tmp_path, "Mal Lory", "mal@example.com", ["trust-admin", "approver"])
    with pytest.raises(TrustError, match="not in the trust store"):
        sign_trust_store(tmp_path, mallory.signer())
    approver = add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    sign_trust_store(tmp_path, admin.signer())
    add_person(tmp_path, "Rolf Reviewer", "rolf@example.com", ["reviewer"])
    with pytest.raises(TrustError, match="trust-admin role"):
        sign_trust_store(tmp_path, approver.signer())


def test_tampered_store_or_history_is_refused(tmp_path: Path) -> None:
    admin = add_person(tmp_path, "Tom Admin", "tom@example.com", ["trust-admin"])
    sign_trust_store(tmp_path, admin.signer())
    add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    sign_trust_store(tmp_path, admin.signer())
    trust = tmp_path / "trust.yaml"
    good = trust.read_bytes()

    # Someone grants themselves a role in trust.yaml by hand.
    trust.write_bytes(good.replace(b"- approver", b"- approver\n  - trust-admin", 1))
    assert TrustStore.load(trust)  # still a well-formed store: only the history can tell
    with pytest.raises(TrustError, match="unsigned change or tampering"):
        check_history(tmp_path)

    # ... and edits the history copy to match: the signature no longer covers it.
    history_copy = tmp_path / "trust-history" / "v0002.yaml"
    history_copy.write_bytes(trust.read_bytes())
    with pytest.raises(TrustError, match="differs from what was signed"):
        check_history(tmp_path)

    # A removed version breaks the chain.
    trust.write_bytes(good)
    history_copy.write_bytes(good)
    check_history(tmp_path)
    (tmp_path / "trust-history" / "v0001.yaml").unlink()
    with pytest.raises(TrustError, match="not 1..1"):
        check_history(tmp_path)


def test_a_revoked_admin_cannot_sign_the_next_version(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    admin = add_person(tmp_path, "Tom Admin", "tom@example.com", ["trust-admin"])
    sign_trust_store(tmp_path, admin.signer())
    store = TrustStore.load(tmp_path / "trust.yaml")
    store.revoke(admin.keyid, datetime.now(UTC))
    store.save()
    sign_trust_store(tmp_path, admin.signer(), "revoke myself")  # valid in version 1
    add_person(tmp_path, "Ada Approver", "ada@example.com", ["approver"])
    with pytest.raises(TrustError, match="revoked"):
        sign_trust_store(tmp_path, admin.signer())
