"""Deviations and protocol approval in real runs of `vqual qualify`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    FAILING,
    PASSING,
    add_person,
    bundle_records,
    executor,
    qualify,
    small_spec,
    vqual_with_passphrase,
)


def _deviations(state: Path, change: str, expiry: datetime, **extra: str) -> Path:
    folder = state / "deviations" / change
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "id": "DEV-007",
        "test_id": FAILING["id"],
        "target": "localhost",
        "justification": "this build host is not the OS the protocol names",
        "expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "owner": "ops@example.com",
        **extra,
    }
    path = folder / "deviations.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "change_id": change, "deviations": [entry]}))
    return path


def test_signed_deviation_waives_a_failure_unsigned_and_expired_do_not(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    spec = small_spec(tmp_path, [PASSING, FAILING])
    evidence = tmp_path / "evidence"
    soon = datetime.now(UTC) + timedelta(days=10)

    # Unsigned: the failure stands.
    _deviations(state, "CHG0006001", soon)
    done, summary = qualify(state, evidence, spec, "CHG0006001")
    assert done.returncode == 1, done.stdout + done.stderr
    assert summary["counts"]["fail"] == 1 and summary["counts"]["waived"] == 0

    # Signed by an approver: the failure is waived with the deviation's id; the run passes.
    signed = vqual_with_passphrase(
        "deviation", "approve", "CHG0006001", "DEV-007", "--key", str(approver), state_dir=state
    )
    assert signed.returncode == 0, signed.stderr
    listed = run_vqual("deviation", "list", "CHG0006001", state_dir=state)
    assert "DEV-007" in listed.stdout and "approved by Ada Approver" in listed.stdout
    done, summary = qualify(state, evidence, spec, "CHG0006001")
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary["verdict"] == "pass" and summary["counts"]["waived"] == 1
    assert summary["verification"] == "valid"
    records = bundle_records(Path(summary["bundle"]))
    result = next(
        r["data"]
        for r in records
        if r["kind"] == "check.result" and r["data"]["test_id"] == FAILING["id"]
    )
    assert result["verdict"] == "waived" and result["deviation"] == "DEV-007"
    waiver = next(r["data"] for r in records if r["kind"] == "deviation.waiver")
    assert waiver["id"] == "DEV-007" and waiver["approved_by"]["name"] == "Ada Approver"
    report = (Path(summary["bundle"]) / "report.html").read_text()
    assert "DEV-007" in report

    # Expired: approved while valid, run after its expiry: the failure stands.
    expiry = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    _deviations(state, "CHG0006002", expiry)
    signed = vqual_with_passphrase(
        "deviation", "approve", "CHG0006002", "DEV-007", "--key", str(approver), state_dir=state
    )
    assert signed.returncode == 0, signed.stderr
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.5)
    done, summary = qualify(state, evidence, spec, "CHG0006002")
    assert done.returncode == 1, done.stdout + done.stderr
    assert summary["counts"]["fail"] == 1 and summary["counts"]["waived"] == 0


def test_a_malformed_deviations_file_stops_the_run_before_anything_executes(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    executor(state)
    spec = small_spec(tmp_path, [PASSING, FAILING])
    path = _deviations(state, "CHG0006003", datetime.now(UTC) + timedelta(days=1))
    path.write_text(path.read_text().replace("owner:", "ownr:"))
    done, _ = qualify(state, tmp_path / "evidence", spec, "CHG0006003")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown field(s) ['ownr']" in done.stderr and "deviations[0]" in done.stderr
    assert not (tmp_path / "evidence" / "CHG0006003").exists()


def test_required_protocol_approval_gates_the_run_and_is_cited(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    (state / "config.yaml").write_text("require_protocol_approval: true\n")
    spec = small_spec(tmp_path, [PASSING])
    evidence = tmp_path / "evidence"

    done, _ = qualify(state, evidence, spec, "CHG0006004")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "has no valid approval" in done.stderr
    assert not (evidence / "CHG0006004").exists()

    approved = vqual_with_passphrase(
        "sign",
        str(spec),
        "--meaning",
        "approved",
        "--comment",
        "protocol reviewed",
        "--key",
        str(approver),
        state_dir=state,
    )
    assert approved.returncode == 0, approved.stderr
    done, summary = qualify(state, evidence, spec, "CHG0006004")
    assert done.returncode == 0, done.stdout + done.stderr
    start = bundle_records(Path(summary["bundle"]))[0]
    assert start["kind"] == "run.start"
    cited = start["data"]["approval"]
    assert (
        cited["name"] == "Ada Approver" and cited["spec_digest"] == start["data"]["spec"]["digest"]
    )
    assert (state / cited["file"]).is_file()
    report = (Path(summary["bundle"]) / "report.html").read_text()
    assert "Protocol approval" in report and "approved by Ada Approver" in report
    assert cited["digest"] in report

    # One changed byte in the spec voids the approval.
    spec.write_bytes(spec.read_bytes().replace(b"version: '1.0'", b"version: '1.1'"))
    assert b"version: '1.1'" in spec.read_bytes()
    done, _ = qualify(state, evidence, spec, "CHG0006005")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "has no valid approval" in done.stderr


def test_a_plain_playbook_run_is_gated_too(tmp_path: Path) -> None:
    # Without `vqual qualify`: the plan task itself refuses an unapproved protocol where the
    # site requires approval, before anything runs and before any bundle exists.
    import os
    import subprocess
    import sys

    from tests.conftest import COLLECTION, REPO, vqual_env

    state = tmp_path / "state"
    executor(state)
    (state / "config.yaml").write_text("require_protocol_approval: true\n")
    spec = small_spec(tmp_path, [PASSING])
    env = vqual_env(state)
    env.update(ANSIBLE_CALLBACKS_ENABLED="vqual.qualification.evidence",
               VQUAL_KEY_FILE=str(state / "keys" / "executor.pem"),
               VQUAL_EVIDENCE_DIR=str(tmp_path / "evidence"))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(REPO / "inventories" / "local"),
         str(COLLECTION / "playbooks" / "qualify.yml"), "--limit", "localhost",
         "-e", f"vqual_spec={spec}", "-e", "vqual_change_id=CHG0006010"],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=os.fspath(tmp_path),
    )
    assert done.returncode != 0
    assert "has no valid approval" in done.stdout
    assert not (tmp_path / "evidence").exists()


def test_deviation_approve_refuses_the_raiser_in_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    raiser = add_person(state, "Rita Raiser", "rita@example.com", "approver")
    other = add_person(state, "Ada Approver", "ada@example.com", "approver")
    soon = datetime.now(UTC) + timedelta(days=10)
    _deviations(state, "CHG0006009", soon, raised_by="rita@example.com")

    refused = vqual_with_passphrase(
        "deviation", "approve", "CHG0006009", "DEV-007", "--key", str(raiser), state_dir=state
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "Rita Raiser (rita@example.com) raised or owns deviation DEV-007" in refused.stderr
    assert refused.stderr.startswith("vqual: ") and "deviations.yaml" in refused.stderr

    signed = vqual_with_passphrase(
        "deviation", "approve", "CHG0006009", "DEV-007", "--key", str(other), state_dir=state
    )
    assert signed.returncode == 0, signed.stderr
    listed = run_vqual("deviation", "list", "CHG0006009", state_dir=state)
    assert "approved by Ada Approver" in listed.stdout
