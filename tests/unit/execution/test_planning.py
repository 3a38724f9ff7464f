"""The typed run plan: made from the run context, across the process boundary and back, and
what run.start records from it."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.evidence.verify import verify_bundle
from qualification.execution.context import load_run_context
from qualification.execution.planning import RunPlan, make_plan
from qualification.execution.recorder import RunRecorder, open_signer
from tests.unit.execution.runlib import (
    CHANGE,
    FAILING,
    PASSING,
    RUN,
    executor_state,
    local_host,
    test_def,
    write_spec,
)

SAME_OS = test_def("IQ-T-010", "os_release", {"field": "ID"}, {"op": "same_across_hosts", "group": "cluster"})
HOSTVARS = {
    "h1": local_host(vqual_cluster="c1"),
    "h2": local_host(vqual_cluster="c1", vqual_settings={"site": "Mannheim"}),
}
GROUPS = {"all": ["h1", "h2"], "ungrouped": ["h1", "h2"]}


class Tagged(str):
    """A str subclass, as Ansible hands values back (its tagged and unsafe strings)."""


def _tag(value: Any) -> Any:
    if isinstance(value, str):
        return Tagged(value)
    if isinstance(value, dict):
        return {Tagged(k): _tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v) for v in value]
    return value


def _plan(tmp_path: Path) -> tuple[RunPlan, Path, Path]:
    state, key = executor_state(tmp_path)
    spec = write_spec(tmp_path / "specs", [PASSING, FAILING, SAME_OS])
    context = load_run_context(state, spec, change_id=CHANGE, run_id=RUN, trust_required=True)
    return make_plan(context, HOSTVARS, GROUPS), state, key


def test_the_plan_round_trips_through_json_and_ansible_types(tmp_path: Path) -> None:
    plan, _, _ = _plan(tmp_path)
    data = json.loads(json.dumps(plan.to_dict()))
    assert RunPlan.from_dict(data) == plan
    again = RunPlan.from_dict(_tag(data))
    assert again == plan
    assert type(again.change_id) is str
    assert type(again.inventory_snapshot["hosts"]["h2"]["vqual_settings"]["site"]) is str
    assert type(again.targets[0].tests[0].test_id) is str
    assert again.to_dict() == plan.to_dict()


def test_the_packed_plan_reads_back_as_the_plan(tmp_path: Path) -> None:
    """The plan task's form: its bulky parts are JSON texts, one per target for the tests, so
    Ansible handles a few values; read back (tagged, as Ansible hands it over) it is the plan,
    whole or one target's."""
    plan, _, _ = _plan(tmp_path)
    packed = json.loads(json.dumps(plan.to_packed()))
    assert packed["packed"] is True
    assert all(isinstance(packed[k], str) for k in ("planned", "inventory_snapshot", "traceability"))
    assert [sorted(t) for t in packed["targets"]] == [["json", "name"], ["json", "name"]]
    assert RunPlan.from_dict(packed) == plan
    assert RunPlan.from_dict(_tag(packed)).to_dict() == plan.to_dict()
    one = RunPlan.from_dict(_tag(packed), targets=["h2"])
    assert [t.name for t in one.plan.targets] == ["h2"]
    assert one.plan.targets[0] == plan.plan.targets[1]


def test_the_plan_dict_carries_what_the_runner_and_the_report_read(tmp_path: Path) -> None:
    plan, _, _ = _plan(tmp_path)
    data = plan.to_dict()
    assert len(data["planned"]) == 6  # three tests on each of two hosts
    assert data["spec"]["path"] == str((tmp_path / "specs" / "spec.yaml").resolve())
    assert data["data_files"][0]["name"] == "expected"
    assert [t["name"] for t in data["targets"]] == ["h1", "h2"]
    same = next(t for t in data["targets"][0]["tests"] if t["test_id"] == "IQ-T-010")
    assert same["expect"]["hosts"] == ["h1", "h2"]


def test_one_target_is_read_without_the_others(tmp_path: Path) -> None:
    plan, _, _ = _plan(tmp_path)
    only = RunPlan.from_dict(plan.to_dict(), targets=["h2"])
    assert [t.name for t in only.targets] == ["h2"]
    assert only.target("h1") is None
    target = only.target("h2")
    assert target is not None and target == plan.target("h2")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("run_id"), "run_id"),
        (lambda d: d.update(v=2), "plan version 2"),
        (lambda d: d["trust"].update(version="3"), "'3' is not an integer"),
        (lambda d: d.update(deviations={"nope": 1}), "malformed plan"),
        (lambda d: d["targets"][0]["tests"][0].pop("check"), "check"),
    ],
)
def test_a_malformed_plan_is_one_clear_error(tmp_path: Path, mutate: Any, fragment: str) -> None:
    plan, _, _ = _plan(tmp_path)
    data = json.loads(json.dumps(plan.to_dict()))
    mutate(data)
    with pytest.raises(BadInputError, match=fragment):
        RunPlan.from_dict(data)


def test_the_plan_and_run_start_record_the_trust_store_the_run_was_judged_with(
    tmp_path: Path,
) -> None:
    plan, state, key = _plan(tmp_path)
    digest = hashlib.sha256((state / "trust.yaml").read_bytes()).hexdigest()
    assert plan.trust_digest == digest
    # The state directory is signed by the test trust root (runlib.executor_state): version 1.
    assert plan.to_dict()["trust"] == {"digest": digest, "version": 1}

    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    bundle = recorder.start(RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))))
    recorder.finish()
    first = json.loads((bundle / "records.jsonl").read_text().splitlines()[0])
    start = json.loads(base64.b64decode(first["payload"]))
    assert start["kind"] == "run.start"
    assert start["data"]["trust"] == {"digest": digest, "version": 1}
    assert start["data"]["config"] == {
        "file": "config.yaml", "digest": None,
        "settings": {"change_id_pattern": None, "require_protocol_approval": False,
                     "require_signed_trust": False},
    }
    from qualification.review.signed import load_trust

    result = verify_bundle(bundle, load_trust(state))
    assert result.status == "valid" and result.trust_digest == digest


def test_the_recorder_refuses_a_spec_changed_after_planning(tmp_path: Path) -> None:
    plan, _, key = _plan(tmp_path)
    spec = tmp_path / "specs" / "spec.yaml"
    spec.write_bytes(spec.read_bytes() + b"# edited\n")
    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    with pytest.raises(BadInputError, match="changed after the run was planned"):
        recorder.start(plan)
    assert not (tmp_path / "evidence").exists()
