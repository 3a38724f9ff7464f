"""A trust root the attacker cannot write (issue 13, item 1), on real runs of the embedded
default (inventories/local): ``vqual qualify`` writes the bundle, ``vqual verify`` judges it.

The attacker can write the state directory and the evidence, not the pin (it lives outside
the state directory, as a controller's /etc/vqual/trust-root.yaml or an inspector's copy
would). Every attack ends in exit 1 with a one-line reason; the honest bundle verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qualification.review.trust_history import HISTORY_DIR, sign_trust_store
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import PIN_ENV
from tests.conftest import REPO, VENV_BIN, run_vqual
from tests.integration.reviewflow import (
    FAILING,
    LOCAL_INV,
    PASSING,
    add_person,
    executor,
    small_spec,
    vqual_with_passphrase,
)
from tests.trustroot_testlib import PIN, ROOT, pin_state
from tests.unit.evidence.tamper_testlib import cut_run_end, records, rewrite

CHANGE = "CHG0013101"


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run, its state directory signed by the test root (pinned outside it)."""
    tmp = tmp_path_factory.mktemp("trust-root")
    state = tmp / "state"
    executor(state)
    spec = small_spec(tmp, [PASSING, FAILING], name="rooted")
    done = run_vqual("qualify", "--evidence-dir", str(tmp / "evidence"), "-i", str(LOCAL_INV),
                     "-s", str(spec), "-c", CHANGE, "--check", "--json", state_dir=state)
    assert done.stdout.strip().startswith("{"), done.stderr
    summary = json.loads(done.stdout)
    return {"tmp": tmp, "state": state, "bundle": Path(summary["bundle"]), "summary": summary}


def _attacked(honest: dict[str, Any], name: str) -> tuple[Path, Path]:
    """A copy of the state directory and the bundle for an attacker to write."""
    base = honest["tmp"] / name
    shutil.copytree(honest["state"], base / "state")
    shutil.copytree(honest["bundle"], base / "bundle")
    return base / "state", base / "bundle"


def _verify_untouched(bundle: Path, state: Path, *args: str) -> tuple[int, str]:
    """``vqual verify`` as the attacker left the state directory: run_vqual would sign the
    store with the test root first (tests/conftest.py), so the command is started here."""
    env = dict(os.environ, VQUAL_STATE_DIR=str(state), **{PIN_ENV: str(PIN)})
    env.pop("VQUAL_LEGACY_TRUST", None)
    done = subprocess.run([str(VENV_BIN / "vqual"), "verify", str(bundle), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def _one_line_refusal(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return lines[0]


def test_the_honest_bundle_verifies_and_names_its_root(honest: dict[str, Any]) -> None:
    code, out = _verify_untouched(honest["bundle"], honest["state"])
    assert code == 0, out
    assert f"trust root: {ROOT.keyid[:16]} from {PIN_ENV}={PIN}, trust version" in out
    assert honest["summary"]["trust_root"].startswith(f"trust root: {ROOT.keyid[:16]}")
    start = records(honest["bundle"])[0]
    assert start["data"]["trust_root"]["keyid"] == ROOT.keyid
    assert start["data"]["trust_root"]["version"] == start["data"]["trust"]["version"]


def test_attack_1_records_resigned_with_a_fresh_key_added_as_executor(
    honest: dict[str, Any],
) -> None:
    state, bundle = _attacked(honest, "attack1")
    fresh = Ed25519Signer.generate()
    rewrite(bundle, fresh, lambda rec: rec)
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=fresh.public_pem(), name="Intruder", identity="x",
                  roles=["executor"], valid_from=store.keys[ROOT.keyid].valid_from)
    store.save()
    # The store's own history already notices the unsigned change, even under legacy trust.
    code, out = _verify_untouched(bundle, state, "--legacy-trust")
    assert code == 1 and "trust.yaml is not signed version" in out, out
    code, out = _verify_untouched(bundle, state)
    assert code == 1, out
    line = _one_line_refusal(out)
    assert "trust store refused" in line and "trust.yaml is not signed version" in line
    # So the attacker deletes the history: legacy trust now passes the forgery, the pin does not.
    shutil.rmtree(state / HISTORY_DIR)
    code, out = _verify_untouched(bundle, state, "--legacy-trust")
    assert code == 0 and "legacy: no trust root" in out, out
    code, out = _verify_untouched(bundle, state)
    assert code == 1, out
    assert "trust store is not signed" in _one_line_refusal(out)


def _rebuild_history(state: Path, admin: Ed25519Signer, executor_key: Ed25519Signer) -> None:
    """The attacker's own trust store: a fresh history signed by their own trust-admin."""
    shutil.rmtree(state / HISTORY_DIR)
    old = TrustStore.load(state / "trust.yaml")
    store = TrustStore.empty(state / "trust.yaml")
    since = min(k.valid_from for k in old.keys.values())
    store.add_key(public_key_pem=admin.public_pem(), name="Test trust root (throwaway)",
                  identity="trust-root@test.invalid", roles=["trust-admin"], valid_from=since)
    store.add_key(public_key_pem=executor_key.public_pem(), name="Test executor",
                  identity="executor", roles=["executor"], valid_from=since)
    store.save()
    sign_trust_store(state, admin)
    (state / "config.yaml").write_text("require_signed_trust: false\n")


def test_attack_with_the_store_resigned_by_the_attackers_own_trust_admin(
    honest: dict[str, Any],
) -> None:
    state, bundle = _attacked(honest, "attack-resigned-store")
    admin, fresh = Ed25519Signer.generate(), Ed25519Signer.generate()
    rewrite(bundle, fresh, lambda rec: rec)
    _rebuild_history(state, admin, fresh)
    code, out = _verify_untouched(bundle, state, "--legacy-trust")
    assert code == 0, out  # the whole history holds together: only the pin tells
    code, out = _verify_untouched(bundle, state)
    assert code == 1, out
    line = _one_line_refusal(out)
    assert (f"trust store version 1 is not signed by the pinned trust root: key "
            f"{admin.keyid[:16]} is not a pinned trust root") in line


def test_attack_3_run_end_cut_with_the_store_resigned_is_refused(honest: dict[str, Any]) -> None:
    state, bundle = _attacked(honest, "attack3")
    admin, fresh = Ed25519Signer.generate(), Ed25519Signer.generate()
    cut_run_end(bundle)
    rewrite(bundle, fresh, lambda rec: rec)
    _rebuild_history(state, admin, fresh)
    code, out = _verify_untouched(bundle, state)
    assert code == 1, out  # not "incomplete" (3): nothing the attacker wrote is trusted
    assert "is not a pinned trust root" in _one_line_refusal(out)


def test_a_key_added_to_the_store_after_the_records_time_is_refused(
    honest: dict[str, Any],
) -> None:
    state, bundle = _attacked(honest, "late-key")
    late = Ed25519Signer.generate()
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=late.public_pem(), name="Late executor", identity="late",
                  roles=["executor"], valid_from=store.keys[ROOT.keyid].valid_from)
    store.save()
    pin_state(state)  # a real trust-admin signs it in: a new version, after the run
    rewrite(bundle, late, lambda rec: rec)  # the records keep their original times
    code, out = _verify_untouched(bundle, state, "--legacy-trust")
    assert code == 0, out
    code, out = _verify_untouched(bundle, state)
    assert code == 1, out
    assert f"key {late.keyid[:16]} was not in trust store version" in out
    assert "entered the store later" in out


def test_without_a_pin_verify_refuses_unless_legacy_is_asked_for(honest: dict[str, Any]) -> None:
    done = run_vqual("verify", str(honest["bundle"]), state_dir=honest["state"],
                     **{PIN_ENV: ""})
    assert done.returncode == 2
    assert "no trust root pinned" in _one_line_refusal(done.stderr)
    done = run_vqual("verify", str(honest["bundle"]), state_dir=honest["state"],
                     **{PIN_ENV: "", "VQUAL_LEGACY_TRUST": "1"})
    assert done.returncode == 0 and "legacy: no trust root" in done.stdout


def test_a_pin_inside_the_state_directory_is_refused(honest: dict[str, Any]) -> None:
    state, bundle = _attacked(honest, "pin-inside")
    shutil.copy(PIN, state / "trust-root.yaml")
    code, out = _verify_untouched(bundle, state, "--trust-root", str(state / "trust-root.yaml"))
    assert code == 2
    assert "is inside the state directory" in _one_line_refusal(out)


def test_legacy_trust_cannot_approve(honest: dict[str, Any]) -> None:
    state, bundle = _attacked(honest, "legacy-sign")
    key = add_person(state, "Rita Reviewer", "rita", "reviewer")
    done = vqual_with_passphrase("sign", str(bundle), "--meaning", "reviewed", "--key",
                                 str(key), "--legacy-trust", state_dir=state)
    assert done.returncode == 2
    assert "legacy trust (no trust root) cannot be used to sign or approve" in done.stderr
    done = vqual_with_passphrase("sign", str(bundle), "--meaning", "reviewed", "--key",
                                 str(key), state_dir=state)
    assert done.returncode == 0, done.stderr
    assert f"trust root: {ROOT.keyid[:16]}" in done.stdout


def test_qualify_without_a_pin_refuses_unless_legacy_is_asked_for(
    honest: dict[str, Any], tmp_path: Path
) -> None:
    spec = small_spec(tmp_path, [PASSING], name="unpinned")
    args = ("qualify", "--evidence-dir", str(tmp_path / "evidence"), "-i", str(LOCAL_INV),
            "-s", str(spec), "-c", "CHG0013102", "--check", "--json")
    done = run_vqual(*args, state_dir=honest["state"], **{PIN_ENV: ""})
    assert done.returncode == 2 and "no trust root pinned" in _one_line_refusal(done.stderr)
    assert not (tmp_path / "evidence").exists()
    done = run_vqual(*args, "--legacy-trust", state_dir=honest["state"], **{PIN_ENV: ""})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["trust_root"] == "legacy: no trust root"
    assert "trust_root" not in records(Path(summary["bundle"]))[0]["data"]
