"""The inventory model of a real inventory file, read through the one reader (read_hostvars).

Ansible renders the variables and computes group membership (``group_names`` holds a host's
groups, parent groups through their children included); the model is built from that.
"""

from __future__ import annotations

import json
from pathlib import Path

from qualification.spec import assess_risk
from tests.inventory_testlib import model_of

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
              vqual_vcenter_api_key: k-4711
    loose:
      hosts:
        bare: {}
"""


def test_model_of_a_real_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    model = model_of(inventory)
    assert sorted(model.hosts) == ["bare", "kvm1", "kvm2"]
    kvm2 = model.host("kvm2")
    assert kvm2.groups == ("cluster_a", "rack2")  # parent group through its child
    assert kvm2.cluster == "ca"  # group variables arrive merged
    assert kvm2.kinds == ("linux_host", "kvm_host")
    assert assess_risk(model, "kvm2").level == "high"  # LIMS on kvm1, same cluster
    assert model.host("bare").kinds == ()
    recorded = json.dumps(model.snapshot())
    assert "hunter2" not in recorded and "k-4711" not in recorded
