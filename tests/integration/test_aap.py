"""vqual as AAP / AWX runs it (docs/aap.md), on the embedded default; no lab.

- The executor's key reaches the job through the credential type the collection ships,
  applied as AWX applies it (tests/integration/aap.py): the key and passphrase files it writes
  are 0600 and a qualification signs with them.
- ``ansible-runner transmit | ansible-runner worker --delete | ansible-runner process`` (the
  real commands, as AAP runs a job on an execution node): the sealed bundle comes back to the
  controller side in the job's artifacts and verifies there with ``vqual verify``; the
  ``set_stats`` data in the returned artifacts name its verdict, seal and path; a failing
  qualification gives the job status ``failed``, or ``successful`` with
  ``vqual_fail_job_on_fail: false``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
import yaml

from qualification.execution.keys import create_trusted_key
from tests.conftest import REPO, VENV_BIN, run_vqual
from tests.integration.aap import credential_type, inject_credential
from tests.trustroot_testlib import pin_state

PASSPHRASE = "aap-test-passphrase"
PLAYBOOK = "vqual.qualification.qualify"  # by its FQCN, as a project would name it


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory whose trust store holds a passphrase-protected executor key."""
    state = tmp_path_factory.mktemp("aap-state")
    create_trusted_key(state / "executor.pem", state, name="AAP executor",
                       identity="aap@example.org", roles=["executor"],
                       passphrase=PASSPHRASE.encode(), throwaway=True, valid_days=1)
    pin_state(state)  # the job judges trust through the pinned root, as `vqual qualify` does
    return state


def _job(tmp: Path, state: Path, *, failing: bool = False,
         extravars: dict[str, Any] | None = None) -> Path:
    """A private data directory as AWX prepares it: inventory, extra vars and the job's
    environment with the executor credential injected."""
    pdd = tmp / "job"
    (pdd / "project").mkdir(parents=True)
    shutil.copytree(REPO / "inventories" / "local", pdd / "inventory")
    if failing:  # an expectation the test hypervisor does not meet
        host_vars = pdd / "inventory" / "host_vars" / "libvirt-test.yml"
        host_vars.write_text(host_vars.read_text().replace("hypervisor_type: TEST",
                                                           "hypervisor_type: XEN"))
    env = inject_credential(
        credential_type(),
        {"executor_key": (state / "executor.pem").read_text(),
         "executor_key_passphrase": PASSPHRASE},
        pdd)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(REPO),
               ANSIBLE_CALLBACKS_ENABLED="vqual.qualification.evidence",
               VQUAL_STATE_DIR=str(state), VQUAL_INITIATOR="aap-job-42")
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    (pdd / "env" / "extravars").write_text(yaml.safe_dump({
        "vqual_spec": "libvirt-embedded", "vqual_change_id": "CHG0000042",
        "vqual_hosts": "libvirt-test", **(extravars or {})}))
    return pdd


def _payloads(bundle: Path) -> list[dict[str, Any]]:
    import base64

    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def test_the_credential_injects_0600_files_and_the_run_signs_with_them(
    state: Path, tmp_path: Path
) -> None:
    pdd = _job(tmp_path, state)
    env = yaml.safe_load((pdd / "env" / "envvars").read_text())
    for name in ("VQUAL_KEY_FILE", "VQUAL_KEY_PASSPHRASE_FILE"):
        path = pdd / "project" / env[name]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (pdd / "project" / env["VQUAL_KEY_FILE"]).read_text() == \
        (state / "executor.pem").read_text()
    assert PASSPHRASE not in json.dumps(env)  # the passphrase is in a file, not the environment
    result = ansible_runner.run(private_data_dir=str(pdd), playbook=PLAYBOOK, quiet=True,
                                envvars={"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"})
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()
    (bundle,) = (pdd / "project" / "evidence" / "CHG0000042").iterdir()
    done = run_vqual("verify", str(bundle), "--json", state_dir=state)
    verified = json.loads(done.stdout)
    assert (verified["status"], verified["verdict"]) == ("valid", "pass"), done.stdout
    keyid = yaml.safe_load((state / "trust.yaml").read_text())
    first = _payloads(bundle)[0]
    assert first["actor"] in json.dumps(keyid) and first["initiator"] == "aap-job-42"
    assert PASSPHRASE not in "".join(p.read_text(errors="replace")
                                     for p in bundle.rglob("*") if p.is_file())


def _round_trip(pdd: Path, ident: str) -> Path:
    """transmit | worker --delete | process; returns the controller side's artifacts dir.

    The worker unpacks the job into a directory of its own and deletes it afterwards; the
    credential's files are removed from the controller's copy once transmitted, so the run
    can only have used the worker's copy."""
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    runner = str(VENV_BIN / "ansible-runner")
    sent = subprocess.run([runner, "transmit", str(pdd), "-p", PLAYBOOK, "--ident", ident],
                          env=env, capture_output=True, timeout=120, check=True).stdout
    for name in ("VQUAL_KEY_FILE", "VQUAL_KEY_PASSPHRASE_FILE"):
        (pdd / "project" / yaml.safe_load((pdd / "env" / "envvars").read_text())[name]).unlink()
    # The worker exits with the playbook's rc; the job's status travels in its stream.
    worked = subprocess.run([runner, "worker", "--delete"], input=sent, env=env,
                            capture_output=True, timeout=600, check=False).stdout
    subprocess.run([runner, "process", str(pdd), "--ident", ident], input=worked, env=env,
                   capture_output=True, timeout=120, check=True)
    return pdd / "artifacts" / ident


def _stats_data(artifacts: Path) -> dict[str, Any]:
    for event_file in (artifacts / "job_events").glob("*.json"):
        event = json.loads(event_file.read_text())
        if event.get("event") == "playbook_on_stats":
            data: dict[str, Any] = event["event_data"].get("artifact_data") or {}
            return data
    raise AssertionError("no playbook_on_stats event in the returned artifacts")


def test_the_runner_round_trip_returns_the_sealed_bundle_and_it_verifies(
    state: Path, tmp_path: Path
) -> None:
    pdd = _job(tmp_path, state)
    artifacts = _round_trip(pdd, "job-pass")
    assert (artifacts / "status").read_text() == "successful"
    assert (artifacts / "rc").read_text() == "0"
    assert not (pdd / "project" / "evidence").exists()  # written on the worker, deleted there
    stats = _stats_data(artifacts)
    bundle = artifacts / stats["vqual_artifact"]
    assert bundle.parent.parent.name == "vqual-evidence" and bundle.parent.name == "CHG0000042"
    done = run_vqual("verify", str(bundle), "--json", state_dir=state)
    verified = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (verified["status"], verified["verdict"]) == ("valid", "pass")
    assert stats["vqual_verdict"] == "pass"
    assert stats["vqual_seal"] in (artifacts / "stdout").read_text()
    assert stats["vqual_counts"]["pass"] > 0 and stats["vqual_bundle"].endswith(bundle.name)


@pytest.mark.parametrize("fail_job", [True, False])
def test_a_failing_qualification_fails_the_job_unless_configured_not_to(
    state: Path, tmp_path: Path, fail_job: bool
) -> None:
    pdd = _job(tmp_path, state, failing=True, extravars={"vqual_fail_job_on_fail": fail_job})
    artifacts = _round_trip(pdd, f"job-fail-{fail_job}")
    status, rc = (artifacts / "status").read_text(), (artifacts / "rc").read_text()
    assert (status, rc) == (("failed", "2") if fail_job else ("successful", "0"))
    stats = _stats_data(artifacts)
    assert stats["vqual_verdict"] == "fail"
    done = run_vqual("verify", str(artifacts / stats["vqual_artifact"]), "--json",
                     state_dir=state)
    verified = json.loads(done.stdout)
    # The bundle is valid evidence of a failed run: sealed before the job failed.
    assert (verified["status"], verified["verdict"]) == ("valid", "fail"), done.stdout
