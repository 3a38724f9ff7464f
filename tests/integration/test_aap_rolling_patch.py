"""A rolling patch launched as AAP launches it shows each host's steps as they happen.

``playbooks/rolling_patch.yml`` runs through ansible-runner (what AAP's execution nodes run);
its ``vqual.qualification.rolling_patch`` action runs the orchestrator in-process through
``qualification.rollout.launch``, the entry ``vqual patch`` uses. The runner's events, as the
event handler receives them (what AAP streams into the job output), carry one line per step
of :data:`~qualification.rollout.steps.STEP_TABLE`, in order, before the task's result and the
end of the play. The platform is libvirt's real test driver (one host, one powered-off VM);
the patch executor is a stand-in that keeps the host's packages in a file
(tests/aap_platform/vqual_memkvm: no host here has packages to upgrade), registered as a
platform plug-in through its own entry point. No lab.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from qualification.execution.keys import create_trusted_key
from qualification.rollout.steps import STEP_TABLE
from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual
from tests.trustroot_testlib import pin_state
from tests.unit.rollout.test_orchestrator_verdict import CHANGE, NODE

SITE = REPO / "tests" / "aap_platform"


def _job(tmp: Path, **extravars: Any) -> tuple[Path, dict[str, Any], dict[str, str], Path]:
    state = tmp / "state"
    create_trusted_key(state / "keys" / "executor.pem", state, name="AAP executor",
                       identity="aap@example.org", roles=["executor"], passphrase=None,
                       throwaway=True, valid_days=1)
    pin_state(state)  # the action judges trust through the pinned root, as `vqual patch` does
    node = tmp / "node.xml"
    node.write_text(NODE)
    packages = tmp / "packages.json"
    packages.write_text(json.dumps({"h1": {"agent": "1.0"}}))
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "h1": {"vqual_libvirt_uri": f"test://{node}", "vqual_cluster": "c1"},
        "patch-endpoint": {"vqual_memkvm_packages": str(packages)},
    }}}))
    change = tmp / "change.yaml"
    change.write_text(CHANGE.format(risk="low"))
    extra = {"vqual_change_file": str(change), "vqual_platform_host": "patch-endpoint",
             "vqual_inventory": str(inventory), "vqual_evidence_dir": str(tmp / "evidence"),
             "vqual_state_dir": str(state), **extravars}
    env = {"PYTHONPATH": str(SITE), "ANSIBLE_COLLECTIONS_PATH": str(REPO),
           "VQUAL_KEY_FILE": str(state / "keys" / "executor.pem"), "VQUAL_INITIATOR": "aap-job-7",
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    return inventory, extra, env, state


def _run(tmp: Path, inventory: Path, extra: dict[str, Any], env: dict[str, str]
         ) -> tuple[Any, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []  # in the order the handler receives them

    def on_event(event: dict[str, Any]) -> bool:
        received.append(event)
        return True

    (tmp / "job").mkdir()
    result = ansible_runner.run(
        private_data_dir=str(tmp / "job"), playbook=str(COLLECTION / "playbooks" / "rolling_patch.yml"),
        inventory=str(inventory), extravars=extra, envvars=env, quiet=True, event_handler=on_event)
    return result, received


def test_each_step_shows_in_the_job_events_in_order_before_the_play_ends(tmp_path: Path) -> None:
    # One host: no canary can visit another, so RP-OQ-01 is not executed and the verdict is
    # not-executed (exit 3); the job is told not to fail on a sealed verdict.
    # Launched as a node of a workflow (not a slice): AWX's variables for that.
    inventory, extra, env, state = _job(
        tmp_path, vqual_fail_job_on_fail=False, awx_workflow_job_id=11,
        awx_workflow_job_name="Monthly patching", awx_job_template_name="Patch c1")
    result, events = _run(tmp_path, inventory, extra, env)
    assert (result.status, result.rc) == ("successful", 0), result.stdout.read()
    lines = [(i, line.strip()) for i, e in enumerate(events)
             for line in str(e.get("stdout") or "").splitlines() if line.strip().startswith("vqual: h1: ")]
    steps = [line.removeprefix("vqual: h1: ") for _, line in lines]
    assert steps == [s.name for s in STEP_TABLE] + ["committed"], steps
    task_result = next(i for i, e in enumerate(events) if e.get("event") == "runner_on_ok"
                       and (e.get("event_data") or {}).get("task_action", "").endswith("rolling_patch"))
    play_end = next(i for i, e in enumerate(events) if e.get("event") == "playbook_on_stats")
    # Every step line arrived while the task was still running: before its result.
    assert all(i < task_result < play_end for i, _ in lines)
    # The outcome is the command's: its bundle verifies, the host is at the target.
    outcome = events[task_result]["event_data"]["res"]["vqual_patch"]
    assert (outcome["status"], outcome["verdict"], outcome["committed"]) == (
        "done", "not-executed", ["h1"])
    assert events[task_result]["event_data"]["res"]["vqual_exit_code"] == 3
    done = run_vqual("verify", outcome["bundle"], "--json", state_dir=state)
    assert json.loads(done.stdout)["status"] == "valid", done.stdout + done.stderr
    assert json.loads((tmp_path / "packages.json").read_text()) == {"h1": {"agent": "1.1"}}


def test_a_refused_patch_fails_the_task_with_the_commands_exit_code(tmp_path: Path) -> None:
    inventory, extra, env, _state = _job(tmp_path, vqual_bind="0" * 64)
    result, events = _run(tmp_path, inventory, extra, env)
    assert result.status == "failed"
    failed = next(e["event_data"]["res"] for e in events if e.get("event") == "runner_on_failed")
    assert failed["vqual_exit_code"] == 2 and "plan" in failed["msg"], failed


def test_a_sliced_job_is_refused_before_the_patch(tmp_path: Path) -> None:
    # What AWX gives a slice job (awx/main/models/unified_jobs.py, awx_meta_vars): its workflow
    # job, created by slicing and named after the job template.
    inventory, extra, env, _state = _job(
        tmp_path, awx_job_id=12, awx_workflow_job_id=11, awx_workflow_job_name="Patch c1",
        awx_job_template_name="Patch c1")
    result, events = _run(tmp_path, inventory, extra, env)
    assert result.status == "failed"
    failed = [e["event_data"] for e in events if e.get("event") == "runner_on_failed"]
    assert [f["task_action"] for f in failed] == ["ansible.builtin.assert"]
    assert json.loads((tmp_path / "packages.json").read_text()) == {"h1": {"agent": "1.0"}}


def test_a_job_given_a_slice_is_refused_before_the_patch(tmp_path: Path) -> None:
    # vqual_slice: what `vqual qualify --slice` hands its playbook; a patch takes none.
    inventory, extra, env, _state = _job(
        tmp_path, vqual_slice={"index": 1, "count": 2, "job": "7", "parent": "81"})
    result, events = _run(tmp_path, inventory, extra, env)
    assert result.status == "failed"
    failed = [e["event_data"] for e in events if e.get("event") == "runner_on_failed"]
    assert [f["task_action"] for f in failed] == ["ansible.builtin.assert"]
    assert json.loads((tmp_path / "packages.json").read_text()) == {"h1": {"agent": "1.0"}}


def test_the_patch_action_refuses_a_slice_on_its_own(tmp_path: Path) -> None:
    # The action in a site's own playbook, without the assert before it.
    inventory, extra, env, _state = _job(
        tmp_path, vqual_slice={"index": 1, "count": 2, "job": "7", "parent": "81"})
    play = tmp_path / "own.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local",
                                     "gather_facts": False, "tasks": [{
                                         "vqual.qualification.rolling_patch": {
                                             "change": "{{ vqual_change_file }}"}}]}]))
    (tmp_path / "job").mkdir()
    result = ansible_runner.run(private_data_dir=str(tmp_path / "job"), playbook=str(play),
                                inventory=str(inventory), extravars=extra, envvars=env,
                                quiet=True)
    assert result.status == "failed"
    failed = [e["event_data"]["res"] for e in result.events if e.get("event") == "runner_on_failed"]
    assert [(f["vqual_exit_code"], f["msg"]) for f in failed] == [
        (2, "a rolling patch runs as one job: it takes no vqual_slice")]
    assert json.loads((tmp_path / "packages.json").read_text()) == {"h1": {"agent": "1.0"}}


def test_a_sealed_run_that_did_not_pass_fails_the_task_by_default(tmp_path: Path) -> None:
    inventory, extra, env, _state = _job(tmp_path)
    result, events = _run(tmp_path, inventory, extra, env)
    assert result.status == "failed"
    failed = next(e["event_data"]["res"] for e in events if e.get("event") == "runner_on_failed")
    assert failed["vqual_exit_code"] == 3 and "NOT-EXECUTED" in failed["msg"], failed
    assert failed["vqual_patch"]["committed"] == ["h1"]


def test_the_cli_and_the_action_share_the_launcher() -> None:
    from qualification.cli import patch as cli_patch
    from qualification.rollout import launch

    assert cli_patch.run_patch is launch.run_patch and cli_patch.plan_patch is launch.plan_patch
    source = (COLLECTION / "plugins" / "action" / "rolling_patch.py").read_text()
    assert "from qualification.rollout.launch import PatchRequest, run_patch" in source
