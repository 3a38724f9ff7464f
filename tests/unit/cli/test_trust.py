"""`vqual trust sign` and `vqual trust status` through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_vqual
from tests.integration.reviewflow import add_person, vqual_with_passphrase


def test_bootstrap_sign_status_and_an_unsigned_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test's own trust-admin bootstraps the store: the test root stays out of it.
    monkeypatch.setenv("VQUAL_LEGACY_TRUST", "1")
    state = tmp_path / "state"
    admin = add_person(state, "Tom Admin", "tom@example.com", "trust-admin")
    status = run_vqual("trust", "status", state_dir=state)
    assert status.returncode == 0 and "not signed" in status.stdout

    signed = vqual_with_passphrase(
        "trust", "sign", "--key", str(admin), "--comment", "bootstrap", state_dir=state
    )
    assert signed.returncode == 0, signed.stderr
    assert "trust store version 1" in signed.stdout and "added Tom Admin" in signed.stdout

    add_person(state, "Ada Approver", "ada@example.com", "approver")
    status = run_vqual("trust", "status", state_dir=state)
    assert status.returncode == 2 and "unsigned change or tampering" in status.stderr

    signed = vqual_with_passphrase("trust", "sign", "--key", str(admin), state_dir=state)
    assert signed.returncode == 0, signed.stderr
    status = run_vqual("trust", "status", state_dir=state)
    assert status.returncode == 0, status.stderr
    assert "signed version 2" in status.stdout and "added Ada Approver" in status.stdout

    wrong = vqual_with_passphrase(
        "trust", "sign", "--key", str(admin), state_dir=state, passphrase=b"guessing wrong"
    )
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr


def test_rotate_root_hands_over_to_an_endorsed_successor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qualification.signing.trust_root import parse_pin

    monkeypatch.setenv("VQUAL_LEGACY_TRUST", "1")  # this test's own root, not the test root
    state = tmp_path / "state"
    old = add_person(state, "Olga Root", "olga@example.com", "trust-admin")
    new = add_person(state, "Nils Root", "nils@example.com", "trust-admin")
    pin = tmp_path / "pin" / "trust-root.yaml"
    done = vqual_with_passphrase("state", "upgrade", "--key", str(old), "--trust-root", str(pin),
                                 state_dir=state)
    assert done.returncode == 0, done.stderr
    done = vqual_with_passphrase("trust", "rotate-root", "--trust-root", str(pin), "--key",
                                 str(old), "--new-public", f"{new}.pub", "--name", "Nils Root",
                                 state_dir=state)
    assert done.returncode == 0, done.stderr
    first, second = parse_pin(pin.read_bytes(), str(pin))
    assert second.endorsed_by == first.keyid and first.valid_until == second.valid_from
    assert "endorsed by" in done.stdout
    # Only the current root may endorse a successor.
    again = vqual_with_passphrase("trust", "rotate-root", "--trust-root", str(pin), "--key",
                                  str(old), "--new-public", f"{new}.pub", state_dir=state)
    assert again.returncode == 2 and "only the current root" in again.stderr
