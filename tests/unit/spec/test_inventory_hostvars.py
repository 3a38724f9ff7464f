"""InventoryModel.from_hostvars on Ansible's own HostVars: tagged and templated values."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from qualification.evidence.canonical import canonical_bytes
from qualification.spec import InventoryModel, assess_risk

INVENTORY = """\
all:
  children:
    kvm:
      vars:
        vqual_cluster: c1
        vqual_target_kinds: [kvm_host]
        vqual_expected:
          os: "12"
          cpus: "{{ 4 * 2 }}"
          qualified_on: 2026-01-31
          shmmax: 18446744073692774399
      hosts:
        kvm1:
          ansible_host: 127.0.0.11
          ansible_password: hunter2
          vqual_applications: [{name: LIMS, risk: high}]
        kvm2:
          vqual_db_password: hunter3
"""


def test_ansible_hostvars_become_plain_recordable_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "tmp"))
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    source = tmp_path / "hosts.yml"
    source.write_text(INVENTORY)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    variables = VariableManager(loader=loader, inventory=inventory)
    hostvars = HostVars(inventory=inventory, variable_manager=variables, loader=loader)
    groups = {g.name: [h.name for h in g.get_hosts()] for g in inventory.groups.values()}

    model = InventoryModel.from_hostvars({name: hostvars[name] for name in inventory.hosts}, groups)

    kvm1 = model.host("kvm1")
    assert kvm1.groups == ("kvm",)
    assert kvm1.expected["cpus"] == 8  # templated by Ansible
    assert kvm1.expected["shmmax"] == 18446744073692774399
    assert assess_risk(model, "kvm2").level == "high"  # LIMS on kvm1, same cluster
    snapshot = model.snapshot()
    assert snapshot["hosts"]["kvm1"]["vqual_expected"]["qualified_on"] == "2026-01-31"
    assert snapshot["hosts"]["kvm1"]["vqual_expected"]["shmmax"] == "18446744073692774399"
    assert snapshot["hosts"]["kvm2"]["vqual_db_password"] == "<redacted>"
    assert "hunter" not in json.dumps(snapshot)
    assert model.digest == hashlib.sha256(canonical_bytes(snapshot)).hexdigest()
