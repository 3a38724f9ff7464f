"""`vqual qualify` through an inventory with a vaulted password and an environment lookup.

The embedded default inventory (inventories/local), copied and extended: the localhost's
expected OS id comes from an environment lookup (so a test only passes if it was rendered),
and a site password is vault-encrypted (so planning, which reads every ``vqual_*`` variable,
needs the vault password). The password must reach no file of the bundle, no artifact of the
Ansible run and no output.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual
from tests.vault_testlib import encrypt_string, password_file

SECRET = "Site-Vault-Pw-9b1f"
OS_ID_VAR = "VQUAL_TEST_EXPECTED_OS_ID"


def _os_id() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("ID="):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("/etc/os-release has no ID")


@pytest.fixture
def vault_password(tmp_path: Path) -> Path:
    return password_file(tmp_path)


@pytest.fixture
def inventory(tmp_path: Path, vault_password: Path) -> Path:
    copy = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "local", copy)
    host_vars = copy / "host_vars" / "localhost.yml"
    data = yaml.safe_load(host_vars.read_text())
    data["vqual_expected"]["os_id"] = "{{ lookup('ansible.builtin.env', '" + OS_ID_VAR + "') }}"
    host_vars.write_text(yaml.safe_dump(data, sort_keys=False)
                         + encrypt_string("vqual_site_password", SECRET, vault_password))
    return copy


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "vault.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "vault", "title": "Expected values rendered by Ansible",
                     "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "tests": [{
            "id": "IQ-T-010", "title": "OS id as the inventory expects", "protocol": "IQ",
            "requirements": ["URS-HV-02"], "applies_to": ["linux_host"],
            "risk": ["high", "medium", "low"], "check": "os_release", "params": {"field": "ID"},
            "expect": {"op": "equals", "value_from": "os_id"}, "acceptance": "as expected",
        }],
    }, sort_keys=False))
    return path


def _records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def _holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_qualify_renders_a_vaulted_password_and_an_environment_lookup(
    executor_state: Path, tmp_path: Path, inventory: Path, spec: Path, vault_password: Path
) -> None:
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000710",
                     "--limit", "localhost", "--evidence-dir", str(evidence), "--json",
                     "--vault-password-file", str(vault_password),
                     state_dir=executor_state, **{OS_ID_VAR: _os_id()})
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert (summary["verdict"], summary["verification"]) == ("pass", "valid")
    bundle = Path(summary["bundle"])
    [result] = [r["data"] for r in _records(bundle) if r["kind"] == "check.result"]
    # The expected value came from the environment lookup, rendered by Ansible.
    assert (result["test_id"], result["expected"], result["verdict"]) == (
        "IQ-T-010", {"op": "equals", "value": _os_id(), "value_from": "os_id"}, "pass")
    snapshot = json.loads((bundle / "inventory.json").read_text())
    assert json.dumps(snapshot).count("<redacted>") >= 1
    assert _holding(evidence, SECRET) == []
    assert SECRET not in done.stdout + done.stderr


def test_qualify_takes_the_vault_password_from_ansible_s_environment(
    executor_state: Path, tmp_path: Path, inventory: Path, spec: Path, vault_password: Path
) -> None:
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000711",
                     "--limit", "localhost", "--evidence-dir", str(tmp_path / "evidence"),
                     state_dir=executor_state,
                     **{OS_ID_VAR: _os_id(), "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_password)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert _holding(tmp_path / "evidence", SECRET) == []


def test_qualify_without_the_vault_password_is_one_line_exit_2(
    executor_state: Path, tmp_path: Path, inventory: Path, spec: Path
) -> None:
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000712",
                     "--limit", "localhost", "--evidence-dir", str(evidence),
                     state_dir=executor_state, **{OS_ID_VAR: _os_id()})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("vqual: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "vqual_site_password" in lines[0] and "vault" in lines[0]
    assert "--vault-password-file" in lines[0]
    assert not evidence.exists() or not any(evidence.rglob("records.jsonl"))


def test_no_event_of_the_ansible_run_holds_the_password(
    executor_state: Path, tmp_path: Path, inventory: Path, spec: Path, vault_password: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ansible-runner writes each event to its private data directory before handing it
    over; here every event is kept (the run itself drops them) and the whole artifact
    directory, kept for the test, is searched with the bundle."""
    import ansible_runner

    from qualification.execution import runner
    from qualification.execution.inventory import VaultOptions
    from qualification.timeutil import new_run_id, utc_now

    real_run = ansible_runner.run
    events: list[Mapping[str, Any]] = []

    def keep_every_event(**kwargs: Any) -> Any:
        handler: Callable[[Mapping[str, Any]], bool] = kwargs["event_handler"]

        def keep(event: Mapping[str, Any]) -> bool:
            handler(event)
            events.append(event)
            return True

        return real_run(**{**kwargs, "event_handler": keep})

    monkeypatch.setattr(runner.ansible_runner, "run", keep_every_event)
    monkeypatch.setenv(OS_ID_VAR, _os_id())
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    artifacts = tmp_path / "artifacts"
    outcome = runner.run_playbook(runner.PlaybookRun(
        playbook="qualify.yml", inventory=inventory,
        extravars={"vqual_spec": str(spec), "vqual_change_id": "CHG0000713",
                   "vqual_run_id": new_run_id(utc_now())},
        key_file=executor_state / "keys" / "executor.pem", evidence_dir=tmp_path / "evidence",
        state_dir=executor_state, initiator="test", limit="localhost", keep_artifacts=artifacts,
        vault=VaultOptions(password_files=(vault_password,)),
    ))
    assert outcome.rc == 0 and outcome.failed == {} and outcome.plan_error is None, outcome
    kept = list(artifacts.rglob("job_events/*.json"))
    assert len(kept) == len(events) > 5  # every event of the run is on disk for the search
    assert any("vqual_plan" in json.dumps(e) for e in events)
    assert _holding(artifacts, SECRET) == []
    assert _holding(tmp_path / "evidence", SECRET) == []
