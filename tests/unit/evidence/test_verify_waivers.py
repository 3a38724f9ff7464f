"""A ``waived`` result counts only with an approver's valid waiver before it in the bundle.

Real bundles, real keys: the waiver is signed with ``approve_deviation`` and copied into the
run as the recorder does; ``verify_bundle`` and ``vqual verify`` judge it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from qualification.cli import main
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.records import format_time
from qualification.evidence.verify import INCOMPLETE, INVALID, VALID, verify_bundle
from qualification.review.deviations import Waiver, approve_deviation
from qualification.signing import Ed25519Signer, TrustStore
from tests.unit.evidence.evidence_testlib import CHANGE, SINCE, Keys, add_renderings, make_keys

TEST, TARGET = "KVM-13", "kvm01.lab"


def _deviation(state: Path, **over: str) -> None:
    entry = {
        "id": "DEV-001",
        "test_id": TEST,
        "target": TARGET,
        "justification": "firmware update scheduled under CHG0012399",
        "expiry": format_time(datetime.now(UTC) + timedelta(days=30)),
        "owner": "ops@example.com",
        **over,
    }
    folder = state / "deviations" / CHANGE
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1, "change_id": CHANGE, "deviations": [entry]}
    (folder / "deviations.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _waiver(state: Path, keys: Keys, signer: Ed25519Signer | None = None) -> Waiver:
    _deviation(state)
    return approve_deviation(state, CHANGE, "DEV-001", signer or keys.approver, keys.trust)


def _run(
    evidence: Path,
    keys: Keys,
    run_id: str,
    steps: list[tuple[str, dict[str, Any]]],
    *,
    seal: bool = True,
) -> Path:
    """A run of one planned test: run.start, then ``steps`` (kind, data), then run.end."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    w.append("run.start", {"planned": [{"test_id": TEST, "target": TARGET, "protocol": "IQ"}]})
    for kind, data in steps:
        w.append(kind, data)
    if seal:
        add_renderings(w)
        w.seal({"waived": 1}, 1, 1, "pass")
    else:
        w.close()
    return w.path


def _waived(deviation: str | None = "DEV-001", **over: Any) -> tuple[str, dict[str, Any]]:
    data = {
        "test_id": TEST,
        "target": TARGET,
        "protocol": "IQ",
        "verdict": "waived",
        "deviation": deviation,
        "raw": None,
        **over,
    }
    return "check.result", data


def _verify_cli(bundle: Path, state: Path) -> tuple[int, dict[str, Any], str]:
    as_json = CliRunner().invoke(main, ["verify", str(bundle), "--json", "--state-dir", str(state)])
    text = CliRunner().invoke(main, ["verify", str(bundle), "--state-dir", str(state)])
    assert as_json.exit_code == text.exit_code
    return as_json.exit_code, json.loads(as_json.output), text.output


def test_a_waiver_signed_by_an_approver_before_the_result_is_valid(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, pinned=True)
    waiver = _waiver(tmp_path, keys)
    bundle = _run(tmp_path / "ev", keys, "R1", [("deviation.waiver", waiver.record()), _waived()])
    result = verify_bundle(bundle, keys.trust)
    assert result.status == VALID, result.problems
    assert result.waiver_problems == []
    code, payload, _ = _verify_cli(bundle, tmp_path)
    assert code == 0 and payload["status"] == "valid" and payload["waiver_problems"] == []


@pytest.mark.parametrize(
    ("name", "steps", "reason"),
    [
        ("no waiver record at all", lambda w: [_waived()], "no valid waiver before it"),
        (
            "the waiver record after the result",
            lambda w: [_waived(), ("deviation.waiver", w.record())],
            "no valid waiver before it",
        ),
        (
            "a result waived without naming a deviation",
            lambda w: [("deviation.waiver", w.record()), _waived(None)],
            "waived by None",
        ),
        (
            "a waiver for another target",
            lambda w: [("deviation.waiver", w.record()), _waived(target="kvm02.lab")],
            "is for another test or target",
        ),
        (
            "the executor edits the justification",
            lambda w: [
                ("deviation.waiver", dict(w.record(), justification="approved, honest")),
                _waived(),
            ],
            "does not match its signed envelope",
        ),
        (
            "an envelope that is not a signed waiver",
            lambda w: [("deviation.waiver", dict(w.record(), envelope="{}")), _waived()],
            "waiver DEV-001: records.jsonl line 2 (seq 1)",
        ),
    ],
)
def test_a_waived_result_without_a_valid_waiver_before_it_is_invalid(
    tmp_path: Path, name: str, steps: Any, reason: str
) -> None:
    keys = make_keys(tmp_path, pinned=True)
    bundle = _run(tmp_path / "ev", keys, "R1", steps(_waiver(tmp_path, keys)))
    result = verify_bundle(bundle, keys.trust)
    assert result.status == INVALID, name
    assert any(reason in p for p in result.waiver_problems), result.waiver_problems
    assert set(result.waiver_problems) <= set(result.problems)
    code, payload, text = _verify_cli(bundle, tmp_path)
    assert code == 1 and payload["status"] == "invalid", name
    assert any(reason in p for p in payload["problems"])
    assert text.startswith(f"{bundle}: INVALID") and reason in text


def _another_approver(state: Path, name: str, identity: str) -> tuple[Ed25519Signer, TrustStore]:
    """A new approver key added to the state's trust store, and the store with it."""
    signer = Ed25519Signer.generate()
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(
        public_key_pem=signer.public_pem(),
        name=name,
        identity=identity,
        roles=["approver"],
        valid_from=SINCE,
    )
    store.save()
    return signer, TrustStore.load(state / "trust.yaml")


def test_a_waiver_not_signed_by_a_trusted_approver_is_invalid(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    # A real approver's waiver, made with a trust store that holds the approver ...
    outsider, with_outsider = _another_approver(tmp_path, "Olli Outsider", "olli@example.com")
    _deviation(tmp_path)
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", outsider, with_outsider)
    bundle = _run(tmp_path / "ev", keys, "R1", [("deviation.waiver", waiver.record()), _waived()])
    assert verify_bundle(bundle, with_outsider).status == VALID
    # ... judged against a trust store without that key: the waiver is worth nothing.
    result = verify_bundle(bundle, keys.trust)
    assert result.status == INVALID
    assert any("does not verify with any key in the trust store" in p for p in result.problems)
    assert any("no valid waiver before it" in p for p in result.problems)


def test_a_waiver_by_the_runs_initiator_is_invalid(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    # "jane.doe" is the initiator the runs here record.
    jane, trust = _another_approver(tmp_path, "Jane Doe", "jane.doe")
    _deviation(tmp_path)
    waiver = approve_deviation(tmp_path, CHANGE, "DEV-001", jane, trust)
    bundle = _run(tmp_path / "ev", keys, "R1", [("deviation.waiver", waiver.record()), _waived()])
    result = verify_bundle(bundle, trust)
    assert result.status == INVALID
    assert any("who initiated or executed this run" in p for p in result.waiver_problems)


def test_a_crashed_run_with_an_unbacked_waived_result_is_invalid_not_incomplete(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path)
    waiver = _waiver(tmp_path, keys)
    good = _run(
        tmp_path / "ev", keys, "R1", [("deviation.waiver", waiver.record()), _waived()], seal=False
    )
    assert verify_bundle(good, keys.trust).status == INCOMPLETE
    bad = _run(tmp_path / "ev", keys, "R2", [_waived()], seal=False)
    result = verify_bundle(bad, keys.trust)
    assert result.status == INVALID and result.exit_code == 1
    assert any("no valid waiver before it" in p for p in result.problems)
