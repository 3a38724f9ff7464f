"""`vqual qualify` end to end on the embedded default: real Ansible, real evidence."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual, vqual_env

LOCAL_INV = REPO / "inventories" / "local"


def _records(bundle: Path) -> list[dict]:
    out = []
    for line in (bundle / "records.jsonl").read_text().splitlines():
        env = json.loads(line)
        out.append(json.loads(base64.b64decode(env["payload"])))
    return out


def _small_spec(tmp_path: Path, tests: list[dict], name: str = "small") -> Path:
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": name, "title": "A small protocol for tests", "version": "1.0"},
        "requirements": ["URS-HV-02", "URS-SEC-01"],
        "tests": tests,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _test(test_id: str, check: str, params: dict, expect: dict, kinds=("linux_host",)) -> dict:
    return {
        "id": test_id, "title": f"{check} {params}", "protocol": "IQ",
        "requirements": ["URS-HV-02"], "applies_to": list(kinds),
        "risk": ["high", "medium", "low"], "check": check, "params": params,
        "expect": expect, "acceptance": "as expected",
    }


PASSING = _test("IQ-T-001", "file_exists", {"path": "/etc/passwd"}, {"op": "equals", "value": True})
FAILING = _test("IQ-T-002", "os_release", {"field": "ID"}, {"op": "equals", "value": "not-an-os"})


def _qualify(state: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_vqual("qualify", "--evidence-dir", str(tmp_path / "evidence"), *args,
                     state_dir=state, **env)


def test_embedded_default_writes_a_bundle_that_verifies(executor_state: Path, tmp_path: Path) -> None:
    done = _qualify(executor_state, tmp_path, "-i", str(LOCAL_INV), "-s",
                    str(COLLECTION / "specs" / "linux-virt-host.yaml"), "-c", "CHG0000001", "--json")
    assert done.returncode in (0, 1, 3, 4), done.stderr
    summary = json.loads(done.stdout)
    assert summary["schema"] == "vqual.qualify/v1"
    assert summary["verification"] == "valid"
    bundle = Path(summary["bundle"])
    assert summary["executed"] == summary["planned"] >= 40
    # The exit code is the one the overall verdict maps to.
    assert done.returncode == {"pass": 0, "fail": 1, "error": 4, "not-executed": 3}[summary["verdict"]]
    verify = run_vqual("verify", str(bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert summary["seal"] in verify.stdout
    # The trust store names no TSA: every place a person looks says so.
    assert summary["trusted_time"].startswith("no trusted time")
    assert "  trusted time: no trusted time" in verify.stdout
    assert "no trusted time (the trust store names no TSA)" in (bundle / "report.html").read_text()
    for name in ("records.jsonl", "manifest.json", "junit.xml", "report.html", "spec.yaml",
                 "inventory.json"):
        assert (bundle / name).is_file(), name


def test_libvirt_embedded_spec_runs_iq_and_oq(executor_state: Path, tmp_path: Path) -> None:
    done = _qualify(executor_state, tmp_path, "-i", str(LOCAL_INV), "-s",
                    str(COLLECTION / "specs" / "libvirt-embedded.yaml"), "-c", "CHG0000001", "--json")
    summary = json.loads(done.stdout)
    records = _records(Path(summary["bundle"]))
    results = [r["data"] for r in records if r["kind"] == "check.result"]
    protocols = {r["protocol"] for r in results}
    assert {"IQ", "OQ"} <= protocols
    assert all(r["target"] == "libvirt-test" for r in results)
    assert any(r["kind"] == "action" for r in records), "OQ steps are recorded as actions"
    assert summary["verification"] == "valid"
    # the requirements file is sealed as a data file and the matrix shows all 29 with text
    start = records[0]["data"]
    assert start["traceability"]["file"] == "urs"
    assert len(start["traceability"]["requirements"]) == 29
    bundle = Path(summary["bundle"])
    assert (bundle / "data" / "urs").read_bytes() == (
        COLLECTION / "specs" / "data" / "urs-seed.yaml"
    ).read_bytes()
    report = (bundle / "report.html").read_text()
    assert "capacity is extended by adding identical hosts" in report.lower()
    # decommissioning is tested by its own shipped spec (docs/conversion.md), not a procedure
    assert "S: covered by shipped spec decommission" in report


def test_a_failing_test_shows_in_records_junit_and_report(executor_state: Path, tmp_path: Path) -> None:
    spec = _small_spec(tmp_path, [PASSING, FAILING])
    done = _qualify(executor_state, tmp_path, "-i", str(LOCAL_INV), "-s", str(spec),
                    "-c", "CHG0000002", "--limit", "localhost", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    bundle = Path(summary["bundle"])
    results = {r["data"]["test_id"]: r["data"] for r in _records(bundle) if r["kind"] == "check.result"}
    assert results["IQ-T-001"]["verdict"] == "pass"
    assert results["IQ-T-002"]["verdict"] == "fail"
    junit = ET.parse(bundle / "junit.xml").getroot()
    failures = [tc.get("name") for tc in junit.iter("testcase") if tc.find("failure") is not None]
    assert any(name.startswith("IQ-T-002") for name in failures)
    report = (bundle / "report.html").read_text()
    assert "IQ-T-002" in report and "not-an-os" in report


def test_second_run_of_a_change_chains_to_the_first(executor_state: Path, tmp_path: Path) -> None:
    spec = _small_spec(tmp_path, [PASSING])
    seals = []
    for _ in range(2):
        done = _qualify(executor_state, tmp_path, "-i", str(LOCAL_INV), "-s", str(spec),
                        "-c", "CHG0000003", "--limit", "localhost", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads(done.stdout)
        seals.append((summary["seal"], Path(summary["bundle"])))
    start = _records(seals[1][1])[0]
    assert start["kind"] == "run.start"
    assert start["data"]["prev_run_seal"] == seals[0][0]
    assert _records(seals[0][1])[0]["data"]["prev_run_seal"] is None


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed_spec", "small.yaml:4"),
        ("unknown_check", "no_such_check"),
        ("missing_change", "change id"),
        ("malformed_change", "CHG12"),
        ("traversal_change", "change id"),
        ("missing_key", "key"),
        ("existing_run_id", "already exists"),
        ("unknown_test_id", "IQ-NOPE-001"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_bundle(
    case: str, expected: str, executor_state: Path, tmp_path: Path
) -> None:
    spec = _small_spec(tmp_path, [PASSING])
    args = ["-i", str(LOCAL_INV), "-s", str(spec), "-c", "CHG0000004"]
    if case == "malformed_spec":
        spec.write_text("apiVersion: vqual/v1\nkind: Protocol\ntests: [\n")
    elif case == "unknown_check":
        spec = _small_spec(tmp_path, [_test("IQ-T-009", "no_such_check", {}, {"op": "equals", "value": 1})])
        args[3] = str(spec)
    elif case == "missing_change":
        args = args[:4]
    elif case == "malformed_change":
        args[5] = "CHG12"
    elif case == "traversal_change":
        args[5] = "../CHG0000004"
    elif case == "missing_key":
        args += ["--key", str(tmp_path / "nope.pem")]
    elif case == "existing_run_id":
        (tmp_path / "evidence" / "CHG0000004" / "20260101T000000Z-aaaaaa").mkdir(parents=True)
        args += ["--run-id", "20260101T000000Z-aaaaaa"]
    elif case == "unknown_test_id":
        args += ["--test", "IQ-NOPE-001"]
    before = sorted(p for p in (tmp_path / "evidence").rglob("*")) if (tmp_path / "evidence").exists() else []
    done = _qualify(executor_state, tmp_path, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vqual: "), done.stderr
    assert expected.lower() in lines[0].lower()
    assert "Traceback" not in done.stderr + done.stdout
    after = sorted(p for p in (tmp_path / "evidence").rglob("*")) if (tmp_path / "evidence").exists() else []
    assert after == before, "nothing may be written on bad input"


def test_unreachable_host_gets_error_verdicts_and_exit_4(executor_state: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {
        "localhost": {"ansible_connection": "local",
                      "ansible_python_interpreter": str(VENV_BIN / "python"),
                      "vqual_target_kinds": ["linux_host"]},
        "ghost": {"ansible_host": "127.0.0.254", "ansible_port": 1, "ansible_user": "root",
                  "ansible_connection": "ssh", "vqual_target_kinds": ["linux_host"],
                  "ansible_ssh_common_args": "-o ConnectTimeout=3"},
    }}}))
    spec = _small_spec(tmp_path, [PASSING])
    done = _qualify(executor_state, tmp_path, "-i", str(inv), "-s", str(spec), "-c", "CHG0000005", "--json")
    assert done.returncode == 4, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    results = {(r["data"]["target"], r["data"]["test_id"]): r["data"]
               for r in _records(Path(summary["bundle"])) if r["kind"] == "check.result"}
    assert results[("localhost", "IQ-T-001")]["verdict"] == "pass"
    ghost = results[("ghost", "IQ-T-001")]
    assert ghost["verdict"] == "error" and "unreachable" in ghost["reason"]
    assert summary["unreachable"] == ["ghost"]


SECRET = "S3cr3t-planted-7f1e"


def test_planted_secrets_appear_nowhere(executor_state: Path, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(VENV_BIN / "python"),
        "ansible_password": SECRET,
        "vqual_target_kinds": ["linux_host"],
        "vqual_db_password": SECRET,
        "vqual_settings": {"api_token": SECRET, "site": "Mannheim"},
    }}}}))
    playbook = tmp_path / "with_no_log.yml"
    playbook.write_text(f"""
- name: Qualify, then a task whose argument is a secret
  hosts: all
  gather_facts: false
  roles:
    - role: vqual.qualification.qualify
  tasks:
    - name: A task whose argument is a secret
      ansible.builtin.debug:
        msg: "{SECRET}"
      no_log: true
""")
    spec = _small_spec(tmp_path, [PASSING])
    env = vqual_env(executor_state)
    env["ANSIBLE_CALLBACKS_ENABLED"] = "vqual.qualification.evidence"
    env["VQUAL_KEY_FILE"] = str(executor_state / "keys" / "executor.pem")
    env["VQUAL_EVIDENCE_DIR"] = str(tmp_path / "evidence")
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inv), str(playbook), "-v",
         "-e", f"vqual_spec={spec}", "-e", "vqual_change_id=CHG0000006"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cli = _qualify(executor_state, tmp_path, "-i", str(inv), "-s", str(spec), "-c", "CHG0000007", "--json")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    texts = [done.stdout, done.stderr, cli.stdout, cli.stderr]
    files = list((tmp_path / "evidence").rglob("*"))
    assert any(f.name == "inventory.json" for f in files)
    for f in files:
        if f.is_file():
            texts.append(f.read_bytes().decode("utf-8", "replace"))
            # Records are base64 payloads: decode them too.
            if f.name == "records.jsonl":
                texts += [json.dumps(r) for r in _records(f.parent)]
    leaks = [t[:80] for t in texts if SECRET in t]
    assert leaks == []
    snapshot = json.loads((next(f for f in files if f.name == "inventory.json")).read_text())
    assert "Mannheim" in json.dumps(snapshot), "non-secret site facts are kept"


def test_playbook_fails_at_once_without_the_callback(executor_state: Path, tmp_path: Path) -> None:
    spec = _small_spec(tmp_path, [PASSING])
    env = vqual_env(executor_state)
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(LOCAL_INV), str(COLLECTION / "playbooks" / "qualify.yml"),
         "-e", f"vqual_spec={spec}", "-e", "vqual_change_id=CHG0000008"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode != 0
    assert "evidence callback" in done.stdout
    assert not (tmp_path / "evidence").exists()


def test_sigkill_midway_leaves_an_incomplete_bundle_naming_missing_tests(
    executor_state: Path, tmp_path: Path
) -> None:
    inv = tmp_path / "inv.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python"),
            "vqual_target_kinds": ["linux_host"]}
    inv.write_text(yaml.safe_dump({"all": {"hosts": {
        "fast": dict(host), "slow": dict(host, vqual_target_kinds=["kvm_host"])}}}))
    slow = _test("IQ-T-020", "command_output", {"argv": ["sleep", "60"]},
                 {"op": "equals", "value": ""}, kinds=("kvm_host",))
    spec = _small_spec(tmp_path, [PASSING, slow])
    evidence = tmp_path / "evidence"
    proc = subprocess.Popen(
        [str(VENV_BIN / "vqual"), "qualify", "-i", str(inv), "-s", str(spec), "-c", "CHG0000009",
         "--evidence-dir", str(evidence), "--run-id", "20260101T000000Z-abcdef"],
        env=vqual_env(executor_state), cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    records = evidence / "CHG0000009" / "20260101T000000Z-abcdef" / "records.jsonl"
    deadline = time.monotonic() + 120
    # Wait until the fast host's result is recorded: the run is midway (the slow probe sleeps).
    while time.monotonic() < deadline:
        if records.exists() and records.read_text().count("\n") >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert records.exists()
    verify = run_vqual("verify", str(records.parent), state_dir=executor_state)
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert "IQ-T-020" in verify.stdout


def test_a_trust_store_naming_a_tsa_gets_the_seal_time_stamped(
    executor_state: Path, tmp_path: Path
) -> None:
    """The lab's TSA (OpenSSL ts), started here on port 0, named in a copy of the state's
    trust store: the qualify run's seal carries its token, and qualify and verify say so."""
    import shutil
    from datetime import UTC, datetime

    from vqual_lab.tsa import running_tsa

    from qualification.signing import TrustStore
    from qualification.signing.trusted_tsa import TsaEntry

    state = tmp_path / "state"
    shutil.copytree(executor_state, state)
    with running_tsa(tmp_path / "tsa", address="127.0.0.89", port=0) as tsa:
        store = TrustStore.load(state / "trust.yaml")
        store.tsa = TsaEntry("test TSA", tsa.url, tsa.ca_file.read_text(), datetime.now(UTC))
        store.save()
        spec = _small_spec(tmp_path, [PASSING])
        done = _qualify(state, tmp_path, "-i", str(LOCAL_INV), "-s", str(spec),
                        "-c", "CHG0000009", "--limit", "localhost")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "  time:     sealed by " in done.stdout and "per TSA test TSA" in done.stdout
    bundle = next((tmp_path / "evidence" / "CHG0000009").iterdir())
    kinds = [r["kind"] for r in _records(bundle)]
    assert kinds[-2:] == ["run.end", "timestamp"]
    verify = run_vqual("verify", "--json", str(bundle), state_dir=state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["trusted_time"]["tokens"][0]["kind"] == "run.end"
