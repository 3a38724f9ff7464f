"""docs/spec.md stays true: its example spec loads, its inventory example is accepted."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from qualification.spec import InventoryModel, assess_risk, build_plan, load_spec

DOC = Path(__file__).resolve().parents[3] / "docs" / "spec.md"
SHIPPED_DATA = DOC.parents[1] / "ansible_collections/vqual/qualification/specs/data"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_documented_example_spec_loads(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hcl-example.yaml").write_text("models: []\n")
    shutil.copytree(SHIPPED_DATA, tmp_path / "data", dirs_exist_ok=True)
    path = tmp_path / "linux-virt-host.yaml"
    path.write_text(yaml_blocks()[0])
    spec = load_spec(path)  # the real check library
    assert spec.test_ids == ("IQ-OS-001",)
    assert spec.data_file("hcl").declared == "data/hcl-example.yaml"
    assert spec.requirements_file == "urs" and len(spec.traceability) == 29


def test_documented_inventory_example_gives_the_documented_risk(tmp_path: Path) -> None:
    block = yaml_blocks()[2]
    group_vars, host_vars = block.split("# inventories/site/host_vars/kvm1.yml")
    variables = {**yaml.safe_load(group_vars), **yaml.safe_load(host_vars)}
    model = InventoryModel.from_hostvars({"kvm1": variables}, {"cluster_a": ["kvm1"]})
    risk = assess_risk(model, "kvm1")
    assert risk.level == "high"
    assert "application 'LIMS' (high) on VM 'vm-lims' of host 'kvm1'" in risk.reason

    text = yaml_blocks()[0]
    for old, replacement in [
        ("applies_to: [linux_host]", "applies_to: [kvm_host]"),
        ('expect: {op: equals, value: "12"}', "expect: {op: equals, value_from: os_version}"),
    ]:
        assert old in text
        text = text.replace(old, replacement)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hcl-example.yaml").write_text("models: []\n")
    shutil.copytree(SHIPPED_DATA, tmp_path / "data", dirs_exist_ok=True)
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(text)
    plan = build_plan(load_spec(spec_path), model)
    assert plan.target("kvm1").tests[0].expect == {
        "op": "equals",
        "value": "12",
        "value_from": "os_version",
    }
