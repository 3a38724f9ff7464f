"""`vqual baseline capture` on this machine (the local inventory's connection): a draft of
expected values observed from the reference host, refused by a run until the protocol is
approved with it, by an approver other than its capturer; approved, the host passes its own
IQ against it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_vqual
from tests.integration.reviewflow import (
    add_person,
    bundle_records,
    executor,
    host_test,
    vqual_with_passphrase,
)

TESTS = [
    host_test("IQ-B-001", "os_release", {"field": "ID"}, {"op": "equals", "value_from": "os.id"}),
    host_test("IQ-B-002", "os_release", {"field": "VERSION_ID"},
              {"op": "in", "value_from": "os.versions"}),
    host_test("IQ-B-003", "kernel_release", {}, {"op": "regex", "value_from": "kernel_pattern"}),
    host_test("IQ-B-004", "file_exists", {"path": "/etc/passwd"}, {"op": "equals", "value": True}),
]


def _inventory(tmp_path: Path) -> Path:
    host = {"ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "vqual_target_kinds": ["linux_host"]}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}))
    return path


def _spec(tmp_path: Path, baseline: str | None = None) -> Path:
    spec = {
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "baseline-demo", "title": "IQ against a captured baseline",
                     "version": "1.0"},
        "requirements": ["URS-HV-02"],
        **({"data_files": {"baseline": baseline}, "expected_values": "baseline"} if baseline else {}),
        "tests": TESTS,
    }
    path = tmp_path / "baseline-demo.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _qualify(state: Path, tmp_path: Path, spec: Path, change: str):
    return run_vqual("qualify", "-i", str(_inventory(tmp_path)), "-s", str(spec), "-c", change,
                     "--evidence-dir", str(tmp_path / "evidence"), "--json",
                     "--initiator", "Ian Initiator", state_dir=state)


def test_capture_writes_a_draft_that_runs_only_once_approved_by_another(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    capturer = add_person(state, "Carol Capturer", "carol@example.com", "approver")
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    output = tmp_path / "baseline.yaml"
    done = run_vqual("baseline", "capture", "-i", str(_inventory(tmp_path)), "--limit",
                     "localhost", "-s", str(_spec(tmp_path)), "-o", str(output),
                     "-c", "CHG0008901", "--evidence-dir", str(tmp_path / "evidence"),
                     "--initiator", "carol@example.com", "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["captured"] == ["kernel_pattern", "os.id", "os.versions"]
    doc = yaml.safe_load(output.read_text())
    assert (doc["kind"], doc["status"]) == ("ExpectedValues", "draft")
    assert doc["captured"]["by"] == "carol@example.com"
    assert doc["captured"]["host"] == "localhost"
    os_release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    assert doc["values"]["os"]["id"] == os_release["ID"].strip('"')
    # the capture is a signed run of its own: observed, not judged
    results = [r["data"] for r in bundle_records(Path(summary["bundle"]))
               if r["kind"] == "check.result"]
    assert {r["verdict"] for r in results} == {"not-executed"}
    assert run_vqual("verify", summary["bundle"], state_dir=state).returncode == 0

    spec = _spec(tmp_path, output.name)
    refused = _qualify(state, tmp_path, spec, "CHG0008902")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is a draft" in refused.stderr and "carol@example.com" in refused.stderr

    own = vqual_with_passphrase("sign", str(spec), "--meaning", "approved", "--key",
                                str(capturer), state_dir=state)
    assert own.returncode != 0
    assert "carol@example.com captured expected values baseline" in own.stderr
    assert len(own.stderr.strip().splitlines()) == 1

    approved = vqual_with_passphrase("sign", str(spec), "--meaning", "approved", "--key",
                                     str(approver), state_dir=state)
    assert approved.returncode == 0, approved.stderr
    done = _qualify(state, tmp_path, spec, "CHG0008903")
    assert done.returncode == 0, done.stdout + done.stderr
    passed = [r["data"] for r in bundle_records(Path(json.loads(done.stdout)["bundle"]))
              if r["kind"] == "check.result"]
    assert {(r["test_id"], r["verdict"]) for r in passed} == {
        (t["id"], "pass") for t in TESTS
    }


def test_capture_refuses_to_replace_a_file_and_a_spec_without_value_from(tmp_path: Path) -> None:
    state = tmp_path / "state"
    executor(state)
    existing = tmp_path / "baseline.yaml"
    existing.write_text("keep me\n")
    done = run_vqual("baseline", "capture", "-i", str(_inventory(tmp_path)), "--limit",
                     "localhost", "-s", str(_spec(tmp_path)), "-o", str(existing),
                     "-c", "CHG0008904", state_dir=state)
    assert done.returncode == 2 and "exists: a capture never replaces a file" in done.stderr
    assert existing.read_text() == "keep me\n"
