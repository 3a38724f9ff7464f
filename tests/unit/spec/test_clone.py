"""Test scope (master, clone) and the spec's clone section: loading, selection, the plan."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError, SpecError
from qualification.spec import (
    IDENTITY_FIELDS,
    InventoryModel,
    MasterBaseline,
    Plan,
    build_plan,
    load_spec,
)
from tests.unit.spec.spec_testlib import line_of

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"


class CloneRegistry:
    """Check types of the master spec: a fingerprint comparison and two plain ones."""

    def known_check_types(self) -> frozenset[str]:
        return frozenset({"os_release", "packages", "clone_fingerprint"})

    def validate_params(self, check: str, params: Mapping[str, Any]) -> str | None:
        return None


HEAD = """\
apiVersion: vqual/v1
kind: Protocol
metadata: {name: master-vm, title: Master-VM IQ, version: "1.0"}
requirements: [URS-VM-01, URS-VM-02]
"""


def spec_test(test_id: str, applies_to: str, scope: str | None, check: str = "os_release") -> str:
    scope_line = f"    scope: {scope}\n" if scope is not None else ""
    return f"""\
  - id: {test_id}
    title: {test_id}
    protocol: IQ
    requirements: [URS-VM-01]
    applies_to: {applies_to}
    risk: [high, medium, low]
    check: {check}
{scope_line}    expect: {{op: absent}}
    acceptance: as the master
"""


SPEC = (
    HEAD
    + "tests:\n"
    + spec_test("IQ-MVM-001", "[master_vm]", None)  # master only (default scope)
    + spec_test("IQ-MVM-002", "[master_vm]", "[master, clone]")
    + spec_test("IQ-MVM-003", "[master_vm]", "[clone]", check="clone_fingerprint")
    + spec_test("IQ-CLN-001", "[clone]", None)  # written for clones, as before scopes
    + spec_test("IQ-HOST-001", "[linux_host]", None)
)

CLONE_SECTION = """\
clone:
  identity: [name, uuid, macs, hostname, machine_id]
  disk_formats: [qcow2]
  sizing:
    vcpus: {min: 1, max: 4}
    memory_mib: {min: 256}
  master:
    bundle: ../evidence/CHG0000001/20260301T100000Z-0a0b0c
    require_approval: false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "specs" / "master-vm.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> Any:
    return load_spec(write(tmp_path, text), registry=CloneRegistry())


def inventory() -> InventoryModel:
    hostvars = {
        "master": {"vqual_target_kinds": ["master_vm"]},
        "clone1": {"vqual_target_kinds": ["clone"]},
        "host1": {"vqual_target_kinds": ["linux_host"]},
        "both": {"vqual_target_kinds": ["linux_host", "clone"]},
    }
    return InventoryModel.from_hostvars(hostvars, {"all": list(hostvars)})


MASTER = MasterBaseline(
    bundle="/evidence/CHG0000001/20260301T100000Z-0a0b0c",
    seal="5e" * 32,
    change_id="CHG0000001",
    run_id="20260301T100000Z-0a0b0c",
    subject="master",
    fingerprint_digest="f1" * 32,
    approval={"name": "Anna Approver", "keyid": "ab" * 32, "time": "2026-03-01T11:00:00.000000Z"},
)


def test_scope_defaults_to_master_and_is_read(tmp_path: Path) -> None:
    spec = load(tmp_path, SPEC)
    assert [t.scope for t in spec.tests] == [
        ("master",), ("master", "clone"), ("clone",), ("master",), ("master",)
    ]
    assert spec.clone is None
    assert spec.clone_section.identity == IDENTITY_FIELDS
    assert spec.clone_section.master.require_approval is True


def test_a_clone_gets_the_reduced_set_and_the_master_the_full_one(tmp_path: Path) -> None:
    spec = load(tmp_path, SPEC)
    plan = build_plan(spec, inventory(), master=MASTER)
    selected = {t.name: [x.test_id for x in t.tests] for t in plan.targets}
    assert selected == {
        "master": ["IQ-MVM-001", "IQ-MVM-002"],
        "clone1": ["IQ-MVM-002", "IQ-MVM-003", "IQ-CLN-001"],
        "host1": ["IQ-HOST-001"],
        # a clone is qualified as a clone, whatever else it is
        "both": ["IQ-MVM-002", "IQ-MVM-003", "IQ-CLN-001"],
    }
    planned = plan.planned()
    assert {"test_id": "IQ-MVM-003", "target": "clone1", "protocol": "IQ"} in planned
    assert not any(p["target"] == "master" and p["test_id"] == "IQ-MVM-003" for p in planned)


def test_the_clone_comparison_gets_the_master_reference_and_allowed_differences(tmp_path: Path) -> None:
    spec = load(tmp_path, SPEC + CLONE_SECTION)
    plan = build_plan(spec, inventory(), master=MASTER)
    test = next(t for t in plan.target("clone1").tests if t.test_id == "IQ-MVM-003")
    assert test.params["master"] == {
        "bundle": MASTER.bundle, "seal": MASTER.seal, "subject": "master", "digest": "f1" * 32
    }
    assert test.params["allowed"] == {
        "identity": ["name", "uuid", "macs", "hostname", "machine_id"],
        "sizing": {"memory_mib": {"min": 256}, "vcpus": {"min": 1, "max": 4}},
        "disk_formats": ["qcow2"],
    }
    other = next(t for t in plan.target("clone1").tests if t.test_id == "IQ-MVM-002")
    assert "master" not in other.params
    assert plan.clone == {
        "master_bundle": MASTER.bundle,
        "master_seal": MASTER.seal,
        "master_change_id": "CHG0000001",
        "master_run_id": "20260301T100000Z-0a0b0c",
        "master_fingerprint": {"subject": "master", "digest": "f1" * 32},
        "master_approval": MASTER.approval,
        "allowed": test.params["allowed"],
    }
    again = Plan.from_json(plan.to_json())
    assert again.clone == plan.clone
    assert again.target("clone1").tests[1].params == test.params


def test_a_clone_comparison_without_a_master_is_refused(tmp_path: Path) -> None:
    spec = load(tmp_path, SPEC)
    with pytest.raises(BadInputError, match="IQ-MVM-003 on clone 'both'.*no master bundle"):
        build_plan(spec, inventory())
    # without clones in the run, no master is needed and the plan has no clone block
    plan = build_plan(spec, inventory(), hosts=["master", "host1"])
    assert plan.clone is None and "clone" not in plan.to_json()
    assert build_plan(spec, inventory(), hosts=["master"], master=MASTER).clone is None


def test_the_clone_section_is_read_with_the_master_bundle_relative_to_the_spec(tmp_path: Path) -> None:
    spec = load(tmp_path, SPEC + CLONE_SECTION)
    section = spec.clone
    assert section is not None
    assert section.identity == ("name", "uuid", "macs", "hostname", "machine_id")
    assert section.sizing["vcpus"].min == 1 and section.sizing["vcpus"].max == 4
    assert section.sizing["memory_mib"].max is None
    assert section.master.bundle == tmp_path / "specs" / "../evidence/CHG0000001/20260301T100000Z-0a0b0c"
    assert section.master.require_approval is False
    assert section.master.subject is None


@pytest.mark.parametrize(
    ("section", "field", "message"),
    [
        ("clone:\n  sizing:\n    vcpus: {min: 4, max: 2}\n", "vcpus", "min 4 is greater than max 2"),
        ("clone:\n  sizing:\n    disks: {min: 1}\n", "disks", "unknown field"),
        ("clone:\n  identity: [hostname, serial]\n", "identity", "'serial' is not one of"),
        ("clone:\n  master: {bundle: x, approve: true}\n", "approve", "unknown field"),
        ("clone:\n  master: {require_approval: 'yes'}\n", "require_approval", "is not of type 'boolean'"),
        ("clone:\n  sizing:\n    vcpus: {}\n", "vcpus", "should be non-empty"),
    ],
)
def test_a_bad_clone_section_names_file_line_and_field(
    tmp_path: Path, section: str, field: str, message: str
) -> None:
    text = SPEC + section
    with pytest.raises(SpecError, match=message) as info:
        load(tmp_path, text)
    assert str(info.value.where).endswith(f"master-vm.yaml:{line_of(text, field)}")
    assert info.value.message.startswith("clone.")


def test_scope_clone_on_a_test_that_is_not_for_a_vm_is_refused(tmp_path: Path) -> None:
    text = HEAD + "tests:\n" + spec_test("IQ-HOST-001", "[linux_host]", "[master, clone]")
    with pytest.raises(SpecError, match=r"tests\[0\].scope: scope 'clone' needs applies_to"):
        load(tmp_path, text)


@pytest.mark.parametrize("scope", ["[]", "[template]", "[clone, clone]", "clone"])
def test_a_malformed_scope_is_refused(tmp_path: Path, scope: str) -> None:
    text = HEAD + "tests:\n" + spec_test("IQ-MVM-001", "[master_vm]", scope)
    with pytest.raises(SpecError, match=r"tests\[0\].scope"):
        load(tmp_path, text)


@pytest.mark.parametrize("path", sorted((COLLECTION / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_still_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.tests


def test_the_documented_clone_section_loads(tmp_path: Path) -> None:
    import re

    doc = (REPO / "docs" / "spec.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yml\n(clone:.*?)```", doc, flags=re.DOTALL)
    assert len(blocks) == 1
    spec = load(tmp_path, SPEC + blocks[0])
    assert spec.clone is not None
    assert spec.clone.sizing["vcpus"].max == 4 and spec.clone.master.subject == "master"
