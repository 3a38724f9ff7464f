"""build_plan: selection per target, value_from resolution, filters, and the JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.spec import InventoryModel, Plan, Spec, build_plan, load_spec
from tests.unit.spec.spec_testlib import TinyRegistry

SPEC = """\
apiVersion: vqual/v1
kind: Protocol
metadata: {name: plan-test, title: Plan test, version: "2.1"}
requirements: [URS-HV-02, URS-CL-01, URS-OPS-04]
tests:
  - id: IQ-OS-001
    title: OS release
    protocol: IQ
    requirements: [URS-HV-02]
    applies_to: [linux_host, kvm_host]
    risk: [high, medium, low]
    check: os_release
    params: {field: VERSION_ID}
    expect: {op: equals, value_from: os_version}
    acceptance: VERSION_ID is the site's approved release
  - id: IQ-CL-001
    title: Same kernel across the cluster
    protocol: IQ
    requirements: [URS-CL-01]
    applies_to: [kvm_host]
    risk: [high, medium]
    check: sysctl
    params: {key: kernel.osrelease}
    expect: {op: same_across_hosts, group: cluster}
    acceptance: every host of the cluster runs the same kernel
  - id: IQ-MEM-001
    title: Memory within the sizing
    protocol: IQ
    requirements: [URS-OPS-04]
    applies_to: [kvm_host]
    risk: [high]
    check: sysctl
    params: {key: vm.memory_mb}
    expect: {op: range, value_from: sizing.memory_mb}
    acceptance: memory within the approved sizing
  - id: OQ-LITERAL-001
    title: A literal expectation
    protocol: OQ
    requirements: [URS-HV-02]
    applies_to: [linux_host]
    risk: [low]
    check: os_release
    params: {field: ID}
    expect: {op: in, value: [debian, ubuntu]}
    acceptance: a Debian-family OS
"""


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    path = tmp_path / "plan.yaml"
    path.write_text(SPEC)
    return load_spec(path, registry=TinyRegistry())


def hostvars() -> dict[str, dict[str, Any]]:
    def expected() -> dict[str, Any]:
        return {"os_version": "12", "sizing": {"memory_mb": {"min": 2048, "max": 8192}}}

    return {
        "kvm1": {
            "vqual_target_kinds": ["kvm_host"],
            "vqual_cluster": "c1",
            "vqual_applications": [{"name": "LIMS", "risk": "high"}],
            "vqual_expected": expected(),
        },
        "kvm2": {
            "vqual_target_kinds": ["kvm_host"],
            "vqual_cluster": "c1",
            "vqual_expected": expected(),
        },
        "ws1": {
            "vqual_target_kinds": ["linux_host"],
            "vqual_risk": "low",
            "vqual_applications": [{"name": "Wiki", "risk": "low"}],
            "vqual_expected": {"os_version": "11"},
        },
    }


def inventory(data: dict[str, dict[str, Any]] | None = None) -> InventoryModel:
    data = hostvars() if data is None else data
    return InventoryModel.from_hostvars(data, {"all": list(data)})


def test_each_target_gets_the_tests_its_kinds_and_risk_require(spec: Spec) -> None:
    plan = build_plan(spec, inventory())
    assert [t.name for t in plan.targets] == ["kvm1", "kvm2", "ws1"]
    by_name = {t.name: [test.test_id for test in t.tests] for t in plan.targets}
    assert by_name == {
        "kvm1": ["IQ-OS-001", "IQ-CL-001", "IQ-MEM-001"],
        "kvm2": ["IQ-OS-001", "IQ-CL-001", "IQ-MEM-001"],  # inherits LIMS through the cluster
        "ws1": ["IQ-OS-001", "OQ-LITERAL-001"],
    }
    kvm2 = plan.target("kvm2")
    assert kvm2.risk == "high"
    assert "application 'LIMS' (high) on host 'kvm1' of cluster 'c1'" in kvm2.risk_reason
    assert plan.target("ws1").risk == "low"


def test_value_from_is_resolved_per_host_and_the_key_kept(spec: Spec) -> None:
    plan = build_plan(spec, inventory())
    kvm1_os = plan.target("kvm1").tests[0]
    assert kvm1_os.expect == {"op": "equals", "value": "12", "value_from": "os_version"}
    ws1_os = plan.target("ws1").tests[0]
    assert ws1_os.expect == {"op": "equals", "value": "11", "value_from": "os_version"}


def test_range_value_from_sets_the_bounds_through_a_dotted_key(spec: Spec) -> None:
    mem = build_plan(spec, inventory()).target("kvm1").tests[2]
    assert mem.expect == {"op": "range", "value_from": "sizing.memory_mb", "min": 2048, "max": 8192}


def test_literal_expectations_pass_through(spec: Spec) -> None:
    literal = build_plan(spec, inventory()).target("ws1").tests[1]
    assert literal.expect == {"op": "in", "value": ["debian", "ubuntu"]}
    assert literal.params == {"field": "ID"}
    assert literal.requirements == ("URS-HV-02",)
    assert (literal.protocol, literal.check, literal.target) == ("OQ", "os_release", "ws1")


def test_same_across_hosts_lists_the_cluster_hosts_that_run_the_test(spec: Spec) -> None:
    plan = build_plan(spec, inventory())
    assert plan.target("kvm1").tests[1].expect == {
        "op": "same_across_hosts",
        "group": "cluster",
        "hosts": ["kvm1", "kvm2"],
    }
    only_one = build_plan(spec, inventory(), hosts=["kvm2"])
    assert only_one.target("kvm2").tests[1].expect["hosts"] == ["kvm2"]


def test_same_across_hosts_needs_a_cluster(spec: Spec) -> None:
    data = hostvars()
    del data["kvm2"]["vqual_cluster"]
    data["kvm2"]["vqual_risk"] = "high"
    with pytest.raises(BadInputError, match="test IQ-CL-001 on host 'kvm2': .*no vqual_cluster"):
        build_plan(spec, inventory(data))


def test_missing_value_from_key_names_test_host_and_key(spec: Spec) -> None:
    data = hostvars()
    del data["kvm2"]["vqual_expected"]["os_version"]
    with pytest.raises(BadInputError) as info:
        build_plan(spec, inventory(data))
    assert str(info.value) == (
        "test IQ-OS-001 on host 'kvm2': vqual_expected key 'os_version' is not set for this host"
    )


def test_missing_key_matters_only_for_hosts_that_run_the_test(spec: Spec) -> None:
    data = hostvars()
    del data["ws1"]["vqual_expected"]["os_version"]
    plan = build_plan(spec, inventory(data), test_ids=["OQ-LITERAL-001"])
    assert plan.planned() == [{"test_id": "OQ-LITERAL-001", "target": "ws1", "protocol": "OQ"}]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"low": 1}, "must be a mapping with min and/or max"),
        (4096, "must be a mapping with min and/or max"),
        ({"min": "2G"}, "min must be a number"),
        ({"min": 9, "max": 1}, "min 9 is greater than max 1"),
    ],
)
def test_bad_range_site_values(spec: Spec, value: Any, fragment: str) -> None:
    data = hostvars()
    data["kvm1"]["vqual_expected"] = {"os_version": "12", "sizing": {"memory_mb": value}}
    with pytest.raises(BadInputError, match="test IQ-MEM-001 on host 'kvm1'") as info:
        build_plan(spec, inventory(data))
    assert fragment in str(info.value)


def test_secret_looking_value_from_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.replace("value_from: os_version", "value_from: root_password"))
    spec = load_spec(path, registry=TinyRegistry())
    data = hostvars()
    data["kvm1"]["vqual_expected"]["root_password"] = "x"
    with pytest.raises(BadInputError, match="'root_password' looks secret"):
        build_plan(spec, inventory(data), hosts=["kvm1"])


def test_site_value_of_the_wrong_type_for_the_op(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        SPEC.replace("{op: equals, value_from: os_version}", "{op: in, value_from: os_version}")
    )
    spec = load_spec(path, registry=TinyRegistry())
    with pytest.raises(BadInputError, match="must be a list for op 'in', not '12'"):
        build_plan(spec, inventory())


def test_host_filter(spec: Spec) -> None:
    plan = build_plan(spec, inventory(), hosts=["ws1"])
    assert [t.name for t in plan.targets] == ["ws1"]


def test_unknown_host_is_refused(spec: Spec) -> None:
    with pytest.raises(BadInputError, match="unknown host 'kvm9'"):
        build_plan(spec, inventory(), hosts=["kvm1", "kvm9"])


def test_test_id_filter(spec: Spec) -> None:
    plan = build_plan(spec, inventory(), test_ids=["IQ-OS-001"])
    assert plan.planned() == [
        {"test_id": "IQ-OS-001", "target": "kvm1", "protocol": "IQ"},
        {"test_id": "IQ-OS-001", "target": "kvm2", "protocol": "IQ"},
        {"test_id": "IQ-OS-001", "target": "ws1", "protocol": "IQ"},
    ]


def test_unknown_test_id_is_refused(spec: Spec) -> None:
    with pytest.raises(BadInputError, match="unknown test id 'IQ-NOPE-001'.*'plan-test'"):
        build_plan(spec, inventory(), test_ids=["IQ-NOPE-001"])


def test_plan_records_spec_and_inventory(spec: Spec) -> None:
    inv = inventory()
    plan = build_plan(spec, inv)
    assert plan.spec == {"name": "plan-test", "version": "2.1", "digest": spec.digest}
    assert plan.inventory_digest == inv.digest
    assert plan.target("ws1").record() == {
        "name": "ws1",
        "kinds": ["linux_host"],
        "risk": "low",
        "risk_reason": plan.target("ws1").risk_reason,
    }


def test_json_round_trip(spec: Spec) -> None:
    plan = build_plan(spec, inventory())
    text = json.dumps(plan.to_json())
    again = Plan.from_json(json.loads(text))
    assert again == plan
    assert again.to_json() == plan.to_json()


def test_to_json_does_not_share_state_with_the_plan(spec: Spec) -> None:
    plan = build_plan(spec, inventory())
    data = plan.to_json()
    data["targets"][0]["tests"][0]["expect"]["value"] = "99"
    assert plan.target("kvm1").tests[0].expect["value"] == "12"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(v=2), "plan version 2 is not 1"),
        (lambda d: d.pop("targets"), "malformed plan"),
        (lambda d: d["targets"][0].update(name=7), "malformed plan"),
        (lambda d: d["targets"][0]["tests"][0].update(expect=[]), "malformed plan"),
        (lambda d: d["targets"][0]["tests"][0].update(params={"a": {1, 2}}), "malformed plan"),
    ],
)
def test_from_json_refuses_malformed_plans(spec: Spec, mutate: Any, fragment: str) -> None:
    data = build_plan(spec, inventory()).to_json()
    mutate(data)
    with pytest.raises(BadInputError, match=fragment):
        Plan.from_json(data)


def test_from_json_returns_plain_types(spec: Spec) -> None:
    class Tagged(str):
        pass

    data = build_plan(spec, inventory()).to_json()
    test = data["targets"][0]["tests"][0]
    test["test_id"] = Tagged(test["test_id"])
    test["expect"] = {Tagged("op"): Tagged("equals"), "value": (Tagged("12"),)}
    again = Plan.from_json(data).targets[0].tests[0]
    assert type(again.test_id) is str
    assert again.expect == {"op": "equals", "value": ["12"]}
    assert [type(key) for key in again.expect] == [str, str]
    assert type(again.expect["op"]) is str and type(again.expect["value"][0]) is str
