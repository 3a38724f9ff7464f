"""The per-spec playbooks: valid Ansible, thin entries over the qualify role with their spec
and host group, and `vqual qualify --playbook` refusing what is not one of them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual, vqual_env

PLAYBOOKS = {
    "kvm_cluster.yml": ("kvm-cluster.yaml", "kvm_hosts"),
    "vsphere_cluster.yml": ("vsphere-cluster.yaml", "vcenter:esxi"),
    "hyperv_host.yml": ("hyperv-host.yaml", "hyperv_hosts"),
}


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_playbook_passes_ansible_syntax_check(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
         str(COLLECTION / "playbooks" / name)],
        env=vqual_env(tmp_path), capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_playbook_is_the_qualify_role_with_its_spec_and_group(name: str) -> None:
    spec, group = PLAYBOOKS[name]
    (play,) = yaml.safe_load((COLLECTION / "playbooks" / name).read_text())
    assert play["roles"] == [{"role": "vqual.qualification.qualify"}]
    assert play["hosts"] == "{{ vqual_hosts | default('" + group + "') }}"
    assert play["vars"]["vqual_spec"] == "{{ playbook_dir }}/../specs/" + spec
    assert (COLLECTION / "specs" / spec).is_file()
    # Every group the playbook names is one the lab inventory has: built from the lab
    # components as `scripts/lab up` builds it, so this holds whether or not the lab runs (the
    # generated inventories/lab/hosts.yml lists only what is running).
    from vqual_lab import manager

    ctx = manager.context()
    inventory = manager.build_inventory(
        [manager.component(name).inventory(ctx) for name in manager.names()]
    )
    for part in group.split(":"):
        assert part in inventory["all"]["children"], part


@pytest.mark.parametrize(
    ("playbook", "message"),
    [("../qualify.yml", "file name from playbooks/"), ("nosuch.yml", "no such playbook")],
)
def test_qualify_refuses_a_playbook_that_is_not_in_the_collection(
    playbook: str, message: str, executor_state: Path, tmp_path: Path
) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {hosts: {h: {ansible_connection: local}}}\n")
    done = run_vqual("qualify", "-i", str(inv), "-s", str(COLLECTION / "specs" / "kvm-cluster.yaml"),
                     "-c", "CHG0000501", "--playbook", playbook,
                     "--evidence-dir", str(tmp_path / "ev"), state_dir=executor_state)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "ev").exists()
