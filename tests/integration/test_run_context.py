"""The run context crosses into the ansible-playbook process: what `vqual qualify` loaded
before Ansible started is what the playbook plans and records with, read from the handed-over
file, not from the state directory again."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import yaml

from qualification.evidence.verify import verify_bundle
from qualification.execution.qualify import QualifyRequest, preflight
from qualification.execution.runner import PlaybookRun, run_playbook
from tests.conftest import VENV_BIN
from tests.trustroot_testlib import ROOT, pin_state

CHANGE = "CHG0007101"
RUN = "20260301T120000Z-7a7a7a"


def _run_start(bundle: Path) -> dict:
    first = json.loads((bundle / "records.jsonl").read_text().splitlines()[0])
    return json.loads(base64.b64decode(first["payload"]))["data"]


def test_the_playbook_plans_and_records_with_the_context_vqual_loaded(
    executor_state: Path, tmp_path: Path
) -> None:
    # A state directory of this test's own (the session's is shared): its trust store copied.
    state = tmp_path / "state"
    state.mkdir()
    (state / "trust.yaml").write_bytes((executor_state / "trust.yaml").read_bytes())
    key = executor_state / "keys" / "executor.pem"
    (state / "config.yaml").write_text("change_id_pattern: '^CHG[0-9]{7}$'\n")
    pin_state(state)  # version 1, signed by the test trust root
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "handoff", "title": "Handoff", "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "tests": [{
            "id": "IQ-T-001", "title": "passwd exists", "protocol": "IQ",
            "requirements": ["URS-HV-02"], "applies_to": ["linux_host"],
            "risk": ["high", "medium", "low"], "check": "file_exists",
            "params": {"path": "/etc/passwd"}, "expect": {"op": "equals", "value": True},
            "acceptance": "present",
        }],
    }))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python"),
        "vqual_target_kinds": ["linux_host"], "vqual_risk": "high",
    }}}}))
    evidence = tmp_path / "evidence"
    request = QualifyRequest(
        inventory=inventory, spec=spec, change_id=CHANGE, key_file=key,
        passphrase_reader=lambda: b"", evidence_dir=evidence, state_dir=state,
        initiator="tester", run_id=RUN,
    )
    checked = preflight(request)
    trust_digest = hashlib.sha256((state / "trust.yaml").read_bytes()).hexdigest()
    config_digest = hashlib.sha256((state / "config.yaml").read_bytes()).hexdigest()

    # After vqual loaded them, the state directory's inputs become unusable: a playbook that
    # loaded them again would stop at its plan task.
    (state / "config.yaml").write_text("no_such_setting: [\n")
    (state / "trust.yaml").write_text("version: 99\n")
    (state / "deviations" / CHANGE).mkdir(parents=True)
    (state / "deviations" / CHANGE / "deviations.yaml").write_text("not: [a, deviations, file\n")

    outcome = run_playbook(PlaybookRun(
        playbook="qualify.yml", inventory=inventory,
        extravars={"vqual_spec": str(spec), "vqual_change_id": CHANGE, "vqual_run_id": RUN},
        key_file=key, evidence_dir=evidence, state_dir=state, initiator="tester",
        context=checked.context,
    ))
    assert outcome.plan_error is None, outcome.plan_error
    assert outcome.rc == 0, (outcome.status, outcome.failed)
    bundle = evidence / CHANGE / RUN
    start = _run_start(bundle)
    assert start["trust"] == {"digest": trust_digest, "version": 1}
    assert start["trust_root"] == {"keyid": ROOT.keyid, "version": 1}
    assert start["config"]["digest"] == config_digest
    assert start["config"]["settings"]["change_id_pattern"] == "^CHG[0-9]{7}$"
    assert checked.context.trust is not None
    result = verify_bundle(bundle, checked.context.trust)
    assert result.status == "valid" and result.verdict == "pass", result.problems
