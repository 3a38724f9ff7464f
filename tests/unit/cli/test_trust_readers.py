"""Every reader of evidence judges trust through the pinned root, as ``vqual verify`` does
(VQ-92): ``report``, the standard ``export``, ``deviation list``, ``drift --baseline`` and
``audit``.

The attacker can write the state directory and the evidence, not the pin: they re-sign a
bundle with a key of their own and rebuild the whole trust history with a trust-admin of
their own, so the store holds together (legacy trust accepts it) and only the pin tells.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from qualification.cli import main
from qualification.evidence.records import format_time
from qualification.review.deviations import approve_deviation
from qualification.review.signed import load_trust
from qualification.review.trust_history import HISTORY_DIR, sign_trust_store
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import PIN_ENV
from tests.trustroot_testlib import PIN, ROOT
from tests.unit.evidence.evidence_testlib import CHANGE, SINCE, build_bundle, make_keys
from tests.unit.evidence.tamper_testlib import rewrite

RUN = "20260301T100000Z-a1b2c3"
ATTACKER_ADMIN = "trust store version 1 is not signed by the pinned trust root"


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, str(PIN))
    monkeypatch.delenv("VQUAL_LEGACY_TRUST", raising=False)


def _deviations(state: Path) -> None:
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True)
    expiry = format_time(datetime.now(UTC) + timedelta(days=5))
    (folder / "deviations.yaml").write_text(yaml.safe_dump({
        "version": 1, "change_id": CHANGE,
        "deviations": [{"id": "DEV-1", "test_id": "KVM-13", "target": "kvm02.lab",
                        "justification": "known", "expiry": expiry, "owner": "ops"}],
    }))


def _honest(tmp_path: Path) -> tuple[Path, Path]:
    """A state directory signed by the test root, one bundle and an approved deviation."""
    state, evidence = tmp_path / "honest" / "state", tmp_path / "honest" / "evidence"
    state.mkdir(parents=True)
    keys = make_keys(state, pinned=True)
    build_bundle(evidence, keys, RUN)
    _deviations(state)
    approve_deviation(state, CHANGE, "DEV-1", keys.approver, load_trust(state))
    return state, evidence / CHANGE / RUN


def _attacked(tmp_path: Path) -> tuple[Path, Path]:
    """The honest world rewritten: the bundle re-signed by the attacker's executor, the
    waiver by their approver, the store and its history rebuilt by their trust-admin."""
    honest_state, honest_bundle = _honest(tmp_path)
    state, bundle = tmp_path / "attack" / "state", tmp_path / "attack" / "ev" / CHANGE / RUN
    shutil.copytree(honest_state, state)
    shutil.copytree(honest_bundle, bundle)
    admin, executor, approver = (Ed25519Signer.generate() for _ in range(3))
    shutil.rmtree(state / HISTORY_DIR)
    shutil.rmtree(state / "deviations" / CHANGE / "waivers")
    store = TrustStore.empty(state / "trust.yaml")
    for signer, name, role in ((admin, "Test trust root (throwaway)", "trust-admin"),
                               (executor, "CI Pipeline", "executor"),
                               (approver, "Anna Approver", "approver")):
        store.add_key(public_key_pem=signer.public_pem(), name=name, identity=name,
                      roles=[role], valid_from=SINCE)
    store.save()
    sign_trust_store(state, admin)
    (state / "config.yaml").write_text("require_signed_trust: false\n")
    rewrite(bundle, executor, lambda rec: rec)
    approve_deviation(state, CHANGE, "DEV-1", approver, load_trust(state))
    return state, bundle


def _vqual(state: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--state-dir", str(state)])


def _refusal(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _readers(bundle: Path, out: Path) -> dict[str, list[str]]:
    evidence = bundle.parents[1]
    return {
        "report": ["report", str(bundle), "--out", str(out / "views")],
        "export": ["export", str(bundle), "--format", "sarif", "-o", str(out / "x.sarif")],
        "deviation list": ["deviation", "list", CHANGE],
        "audit": ["audit", "--since", "2000-01-01", "--evidence-dir", str(evidence)],
    }


def test_the_honest_world_is_read_through_the_pinned_root(tmp_path: Path) -> None:
    state, bundle = _honest(tmp_path)
    for what, args in _readers(bundle, tmp_path).items():
        done = _vqual(state, *args)
        assert done.exit_code == 0, (what, done.output)
        assert f"trust root: {ROOT.keyid[:16]}" in done.output, (what, done.output)
    listed = _vqual(state, "deviation", "list", CHANGE).stdout
    assert "DEV-1" in listed and "approved by Anna Approver" in listed
    audit = _vqual(state, *_readers(bundle, tmp_path)["audit"]).stdout
    assert "CI Pipeline" in audit and "trust.refused" not in audit


@pytest.mark.parametrize("what", ["report", "export", "deviation list", "audit"])
def test_a_store_the_pin_does_not_vouch_for_is_refused_by_each_reader(
    tmp_path: Path, what: str
) -> None:
    state, bundle = _attacked(tmp_path)
    (tmp_path / "legacy").mkdir()
    # the attacker's store holds together: judged without the pin, the forgery passes
    legacy = _vqual(state, *_readers(bundle, tmp_path / "legacy")[what], "--legacy-trust")
    assert legacy.exit_code == 0, legacy.output
    assert "legacy: no trust root" in legacy.output
    out = tmp_path / "pinned"
    out.mkdir()
    done = _vqual(state, *_readers(bundle, out)[what])
    assert done.exit_code == 1, done.output
    line = _refusal(done)
    assert line.startswith("vqual: trust store refused: ") and ATTACKER_ADMIN in line, line
    assert list(out.iterdir()) == []  # nothing written
    if what == "audit":
        # listed all the same (damage is never filtered away), the refusal first; no
        # signer is named from the attacker's store, no signed document verifies
        rows = done.stdout.splitlines()[1:]
        assert "trust.refused" in rows[0] and ATTACKER_ADMIN in rows[0]
        acts = [r for r in rows if " action " in r]
        assert acts and all("(no trust store vouched for)" in r for r in acts)
        assert "trust.key-valid-from" not in done.stdout
        waiver = next(r for r in rows if "deviation.approved" in r)
        assert waiver.endswith("NOT VERIFIED: no trust store vouched for")
    else:
        assert done.stdout == ""


def test_drift_refuses_a_baseline_the_pin_does_not_vouch_for(tmp_path: Path) -> None:
    state, bundle = _attacked(tmp_path)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    kvm01.lab: {}\n")
    done = _vqual(state, "drift", "--baseline", str(bundle), "-i", str(inventory),
                  "--evidence-dir", str(tmp_path / "drift-ev"))
    assert done.exit_code == 1, done.output
    line = _refusal(done)
    assert line.startswith(f"vqual: {bundle}: baseline refused: trust store refused: ")
    assert ATTACKER_ADMIN in line
    assert not (tmp_path / "drift-ev").exists()  # refused before anything ran


def test_without_a_pin_each_reader_asks_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, bundle = _honest(tmp_path)
    monkeypatch.delenv(PIN_ENV)
    for what, args in _readers(bundle, tmp_path).items():
        done = _vqual(state, *args)
        assert done.exit_code == 2, (what, done.output)
        assert "no trust root pinned" in _refusal(done), what
