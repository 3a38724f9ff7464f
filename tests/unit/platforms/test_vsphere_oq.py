"""The vSphere OQ protocol's pure parts: throwaway names and tags, the spec's OQ tests, and
cleanup's rendering of vSphere variables. (The protocol itself runs on the simulator:
tests/integration/test_vsphere.py; its check type ``vsphere_oq_protocol``:
tests/unit/checks/test_vsphere.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualification.cleanup import cleanup
from qualification.platforms.vsphere.cleanup import vsphere_hosts
from qualification.platforms.vsphere.endpoint import VSPHERE_VARS
from qualification.execution.inventory import read_hostvars
from qualification.platforms.base import BadArgs
from qualification.platforms import registry
from qualification.platforms.vsphere.oq import (
    OQ_TESTS,
    OqSettings,
    is_run_throwaway,
    throwaway_name,
)
from qualification.spec import load_spec

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
RUN = "20260101T000000Z-abc123"

_run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


def _vm(name: str, attribute: str | None = None, extra: str | None = None) -> dict[str, Any]:
    return {"name": name, "power_state": "stopped", "host": "h0", "attribute": attribute,
            "extra_config": extra}


def test_throwaway_names_carry_the_run_id_and_refuse_unsafe_ones() -> None:
    assert throwaway_name(RUN, "oq") == f"vqual-tmp-{RUN}-oq"
    for bad in ("", "../x", "a b", "-x"):
        with pytest.raises(BadArgs, match="not a safe VM name part"):
            throwaway_name(bad, "oq")


def test_a_throwaway_needs_the_name_prefix_and_a_tag_of_the_run() -> None:
    name = f"vqual-tmp-{RUN}-oq"
    assert is_run_throwaway(_vm(name, attribute=RUN), RUN)
    assert is_run_throwaway(_vm(name, extra=RUN), RUN)  # standalone ESXi: extraConfig only
    assert not is_run_throwaway(_vm(name), RUN)  # the prefix alone is not a tag
    assert not is_run_throwaway(_vm("DC0_C0_RP0_VM0", attribute=RUN, extra=RUN), RUN)
    assert not is_run_throwaway(_vm(name, attribute="other", extra="other"), RUN)


@given(run=_run_ids, other=_run_ids)
def test_no_run_removes_another_runs_throwaway(run: str, other: str) -> None:
    # Run ids can be prefixes of each other ("R" and "R-1"); the tag tells them apart.
    vm = _vm(throwaway_name(other, "oq"), attribute=other, extra=other)
    assert is_run_throwaway(vm, run) == (run == other)


def test_oq_settings_are_names() -> None:
    assert OqSettings.from_args({"template": "t", "tests": ["clone"]}) == OqSettings(template="t")
    with pytest.raises(BadArgs, match="destination must be a name"):
        OqSettings.from_args({"destination": 3})


def test_the_spec_has_one_oq_test_per_protocol_step() -> None:
    spec = load_spec(COLLECTION / "specs" / "vsphere-cluster.yaml")
    oq = {t.id: t for t in spec.tests if t.protocol == "OQ"}
    assert sorted(oq) == [f"OQ-VS-00{n}" for n in range(1, 9)]
    covered = {t.params["test"] for t in oq.values()}
    assert covered == set(OQ_TESTS)
    assert all(set(t.applies_to) == {"vcenter", "esxi"} for t in oq.values())


def test_a_malformed_oq_setting_is_an_error_observation() -> None:
    host_vars = {"vqual_vsphere_host": "127.0.0.1", "vqual_vsphere_port": 1,
                 "vqual_vsphere_username": "u", "vqual_vsphere_password": "p",
                 "vqual_vsphere_oq": "DC0_C0_RP0_VM3"}
    obs = registry.get("vsphere").answer([{"key": "k", "method": "oq_protocol", "args": {}}],
                         host_vars=host_vars, run_id=RUN)
    assert obs["k"]["error"] == (
        "vqual_vsphere_oq must be a mapping {template, destination, maintenance_host}")


def test_cleanup_renders_vsphere_variables_through_ansible(tmp_path: Path) -> None:
    """The lab's inventories give the password as a file lookup; cleanup needs its value."""
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps({"username": "svc", "password": "s3cret-Pw"}))
    secret.chmod(0o600)
    lookup = f"(lookup('ansible.builtin.file', '{secret}') | from_json)"
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {
        "vc": {"ansible_connection": "local", "vqual_vsphere_host": "127.0.0.41",
               "vqual_vsphere_port": 18443, "vqual_vsphere_validate_certs": False,
               "vqual_vsphere_username": "{{ " + lookup + ".username }}",
               "vqual_vsphere_password": "{{ " + lookup + ".password }}"},
        "kvm": {"ansible_connection": "local", "vqual_libvirt_uri": "test:///default"},
    }}}))
    rendered = read_hostvars(inventory, names=VSPHERE_VARS)
    assert vsphere_hosts(rendered) == ["vc"]
    assert set(rendered) == {"vc", "kvm"} and rendered["kvm"] == {}
    assert rendered["vc"]["vqual_vsphere_username"] == "svc"
    assert rendered["vc"]["vqual_vsphere_password"] == "s3cret-Pw"
    assert rendered["vc"]["vqual_vsphere_port"] == 18443
    assert rendered["vc"]["vqual_vsphere_validate_certs"] is False
    assert "vqual_vsphere_cluster" not in rendered["vc"]


def test_cleanup_reports_a_target_whose_variables_cannot_be_rendered(tmp_path: Path) -> None:
    """A lookup that fails leaves that target out with one line (exit 4 at the CLI); nothing
    is connected to, and the line names no value."""
    inventory = tmp_path / "hosts.yml"
    missing = tmp_path / "gone.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"vc": {
        "ansible_connection": "local", "vqual_vsphere_host": "127.0.0.41",
        "vqual_vsphere_username": "svc",
        "vqual_vsphere_password": "{{ lookup('ansible.builtin.file', '" + str(missing) + "') }}",
    }}}}))
    found = cleanup(inventory, RUN).targets
    assert [(c.endpoint, c.hosts, c.removed) for c in found] == [("127.0.0.41", ["vc"], [])]
    [error] = found[0].errors
    assert error.startswith("inventory host vc: variable vqual_vsphere_password cannot be "
                            "rendered: ")
    assert str(missing) in error  # Ansible's reason: the file the lookup could not find
