"""`vqual state upgrade` (qualification/review/upgrade.py) through the command line: a state
directory of the old rules (unsigned store, no pin) moved to a pinned, signed one, with a
backup first, idempotent, and nothing written half-way."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.review.trust_history import HISTORY_DIR, history
from qualification.signing.trust_root import PIN_ENV, parse_pin
from tests.conftest import run_vqual
from tests.integration.reviewflow import add_person, vqual_with_passphrase


@pytest.fixture
def legacy_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An old-rules state directory: an executor and a trust-admin key, the store unsigned.

    ``VQUAL_LEGACY_TRUST=1`` keeps the test root out of it (tests/conftest.py); the upgrade
    itself judges only through a pin, whatever the environment says."""
    monkeypatch.setenv("VQUAL_LEGACY_TRUST", "1")
    monkeypatch.delenv(PIN_ENV)
    state = tmp_path / "state"
    done = run_vqual("keys", "create", "--name", "Executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    admin = add_person(state, "Tom Admin", "tom@example.com", "trust-admin")
    return state, admin


def _upgrade(state: Path, admin: Path, *args: str) -> tuple[int, str]:
    done = vqual_with_passphrase("state", "upgrade", "--key", str(admin), *args, state_dir=state)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def test_upgrade_backs_up_signs_pins_and_is_idempotent(
    legacy_state: tuple[Path, Path], tmp_path: Path
) -> None:
    state, admin = legacy_state
    before = (state / "trust.yaml").read_bytes()
    pin = tmp_path / "pins" / "trust-root.yaml"
    code, out = _upgrade(state, admin, "--trust-root", str(pin))
    assert code == 0, out
    (backup,) = tmp_path.glob("state.backup-*")
    assert (backup / "trust.yaml").read_bytes() == before  # the backup is the old state
    assert not (backup / HISTORY_DIR).exists()
    (version,) = history(state)
    assert version.signed_by == "Tom Admin"
    (root,) = parse_pin(pin.read_bytes(), str(pin))
    assert root.keyid == version.keyid
    assert f"trust root pinned in {pin}" in out
    code, out = _upgrade(state, admin, "--trust-root", str(pin))
    assert code == 0 and out.startswith("nothing to do: trust root: "), out
    assert len(list(tmp_path.glob("state.backup-*"))) == 1 and len(history(state)) == 1
    status = run_vqual("trust", "status", state_dir=state, **{PIN_ENV: str(pin)})
    assert "signed version 1" in status.stdout


def test_a_pin_inside_the_state_directory_is_refused_and_nothing_is_written(
    legacy_state: tuple[Path, Path],
) -> None:
    state, admin = legacy_state
    before = (state / "trust.yaml").read_bytes()
    code, out = _upgrade(state, admin, "--trust-root", str(state / "trust-root.yaml"))
    assert code == 2 and "must not be inside the state directory" in out
    assert (state / "trust.yaml").read_bytes() == before
    assert not (state / HISTORY_DIR).exists()
    assert not list(state.parent.glob("state.backup-*"))


def test_a_failed_write_takes_back_what_was_written(
    legacy_state: tuple[Path, Path], tmp_path: Path
) -> None:
    state, admin = legacy_state
    before = (state / "trust.yaml").read_bytes()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the pin's folder should be")
    code, out = _upgrade(state, admin, "--trust-root", str(blocker / "trust-root.yaml"))
    assert code != 0, out
    assert (state / "trust.yaml").read_bytes() == before
    assert not (state / HISTORY_DIR).exists()


def test_without_a_place_for_the_pin_the_upgrade_says_so(legacy_state: tuple[Path, Path]) -> None:
    state, admin = legacy_state
    code, out = _upgrade(state, admin)
    assert code == 2 and "--trust-root FILE" in out
    assert not (state / HISTORY_DIR).exists()
