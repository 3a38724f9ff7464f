"""InventoryModel.from_inventory_list on the real output of ``ansible-inventory --list``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.spec import InventoryModel, assess_risk

INVENTORY = """\
all:
  children:
    cluster_a:
      vars:
        vqual_cluster: ca
        vqual_target_kinds: [linux_host, kvm_host]
      children:
        rack1:
          hosts:
            kvm1:
              ansible_host: 127.0.0.11
              vqual_applications: [{name: LIMS, risk: high}]
        rack2:
          hosts:
            kvm2:
              ansible_host: 127.0.0.12
              ansible_password: hunter2
    loose:
      hosts:
        bare: {}
"""


def ansible_inventory_list(tmp_path: Path) -> dict[str, Any]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    tool = Path(sys.executable).parent / "ansible-inventory"
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(tool), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    )
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_real_ansible_inventory_list(tmp_path: Path) -> None:
    model = InventoryModel.from_inventory_list(ansible_inventory_list(tmp_path))
    assert sorted(model.hosts) == ["bare", "kvm1", "kvm2"]
    kvm2 = model.host("kvm2")
    assert kvm2.groups == ("cluster_a", "rack2")  # parent group through its child
    assert kvm2.cluster == "ca"  # group variables arrive merged
    assert kvm2.kinds == ("linux_host", "kvm_host")
    assert assess_risk(model, "kvm2").level == "high"  # LIMS on kvm1, same cluster
    assert model.host("bare").kinds == ()
    assert "hunter2" not in json.dumps(model.snapshot())


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"all": {"hosts": []}}, "no _meta.hostvars"),
        ({"_meta": {"hostvars": {}}, "g": ["h"]}, "group 'g' is not a mapping"),
        ({"_meta": {"hostvars": {}}, "g": {"hosts": "h"}}, "hosts/children not lists"),
        (
            {"_meta": {"hostvars": {}}, "a": {"children": ["b"]}, "b": {"children": ["a"]}},
            "group cycle a -> b -> a",
        ),
    ],
)
def test_malformed_inventory_list(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadInputError, match=fragment):
        InventoryModel.from_inventory_list(data)
