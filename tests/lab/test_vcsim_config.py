"""The simulator's configuration and build inputs, without starting it (no lab needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vqual_lab import vcsim
from vqual_lab.vcsim import HostHardware, VcsimInstance

from qualification.errors import BadInputError
from tests.conftest import REPO


def test_default_vcenter_flags_provoke_one_bios_difference() -> None:
    args = vcsim.DEFAULT_VCENTER.args()
    assert args[:4] == ["-mode", "vcenter", "-listen", "127.0.0.41:18443"]
    assert ["-hosts", "4"] == args[args.index("-hosts") : args.index("-hosts") + 2]
    pairs = list(zip(args[::2], args[1::2]))
    assert ("-bios-version", "*=2.19.1") in pairs
    assert ("-bios-version", "DC0_C0_H3=2.17.0") in pairs
    assert ("-system-model", "*=PowerEdge R650") in pairs


def test_esx_instance_passes_no_cluster_size() -> None:
    args = vcsim.DEFAULT_ESXI.args()
    assert args[:4] == ["-mode", "esx", "-listen", "127.0.0.42:18444"]
    assert "-hosts" not in args


def test_hardware_fields_left_none_are_not_passed() -> None:
    inst = VcsimInstance(
        key="vc",
        inventory_host="vc",
        mode="vcenter",
        address="127.0.0.99",
        port=1,
        hardware={"DC0_C0_H0": HostHardware(bios_vendor="HPE")},
    )
    flags = [a for a in inst.args() if a.startswith(("-bios", "-system"))]
    assert flags == ["-bios-vendor"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("address", "10.0.0.1", "not in 127.0.0.0/8"),
        ("mode", "hyperv", "mode must be vcenter or esx"),
        ("cluster_hosts", 0, "cluster_hosts must be at least 1"),
    ],
)
def test_bad_instances_are_refused(field: str, value: object, message: str) -> None:
    kw: dict[str, object] = {
        "key": "vc",
        "inventory_host": "vc",
        "mode": "vcenter",
        "address": "127.0.0.99",
        "port": 1,
    }
    kw[field] = value
    with pytest.raises(BadInputError, match=message):
        VcsimInstance(**kw)  # type: ignore[arg-type]


def test_duplicate_instance_keys_are_refused() -> None:
    with pytest.raises(BadInputError, match="duplicate"):
        vcsim.VcsimComponent((vcsim.DEFAULT_VCENTER, vcsim.DEFAULT_VCENTER))


def test_patches_are_kept_as_diffs_against_the_simulator_package() -> None:
    names = [p.name for p in vcsim.patches()]
    assert names == [
        "0001-property-collector-fetch.patch",
        "0002-custom-fields-setfield-replace.patch",
    ]
    for p in vcsim.patches():
        text = p.read_text()
        assert text.startswith("--- a/simulator/")
        assert "+++ b/simulator/" in text


def test_inventory_references_credentials_by_lookup_only(tmp_path: object) -> None:
    from pathlib import Path

    from vqual_lab.component import LabContext

    lab_dir = Path(str(tmp_path))
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=print)
    groups = vcsim.VcsimComponent().inventory(ctx)["groups"]
    assert set(groups) == {"vcenter", "esxi"}
    vc = groups["vcenter"]["hosts"]["vcsim-vc"]
    esx = groups["esxi"]["hosts"]["vcsim-esx"]
    assert vc["vqual_target_kinds"] == ["vcenter"] and esx["vqual_target_kinds"] == ["esxi"]
    for hv in (vc, esx):
        assert hv["ansible_connection"] == "local"
        assert hv["vqual_vsphere_validate_certs"] is False
        assert hv["vqual_vsphere_host"].startswith("127.")
        for key in ("vqual_vsphere_username", "vqual_vsphere_password"):
            assert hv[key].startswith("{{ (lookup('ansible.builtin.file', ")
            assert str(lab_dir / "run" / "vcsim") in hv[key]


def test_env_moves_instances_for_a_second_lab() -> None:
    vc, esx = vcsim.instances_from_env("vcenter=127.0.0.141:28443")
    assert (vc.address, vc.port, vc.url) == ("127.0.0.141", 28443, "https://127.0.0.141:28443/sdk")
    assert vc.hardware == vcsim.DEFAULT_VCENTER.hardware
    assert esx == vcsim.DEFAULT_ESXI
    assert vcsim.instances_from_env("") == (vcsim.DEFAULT_VCENTER, vcsim.DEFAULT_ESXI)


@pytest.mark.parametrize(
    "value", ["vcenter=10.1.1.1:443", "nsx=127.0.0.9:443", "vcenter=127.0.0.9", "esxi"]
)
def test_bad_env_values_are_refused(value: str) -> None:
    with pytest.raises(BadInputError):
        vcsim.instances_from_env(value)


def test_winrm_address_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from vqual_lab.winrm_standin import WinRMStandIn

    monkeypatch.setenv("VQUAL_LAB_WINRM", "127.0.0.151:25985")
    assert WinRMStandIn().url == "http://127.0.0.151:25985/wsman"
    monkeypatch.setenv("VQUAL_LAB_WINRM", "192.168.0.1:5985")
    with pytest.raises(BadInputError, match="127.0.0.0/8"):
        WinRMStandIn()
    monkeypatch.delenv("VQUAL_LAB_WINRM")
    assert WinRMStandIn().url == "http://127.0.0.51:5985/wsman"


def test_the_shipped_lab_inventory_is_what_the_lab_serves() -> None:
    import yaml
    from vqual_lab.component import LabContext

    lab = Path("/var/lib/vqual-lab")
    ctx = LabContext(lab_dir=lab, run_dir=lab / "run", repo_root=None, log=lambda _m: None)
    served = vcsim.VcsimComponent().inventory(ctx)["groups"]
    shipped = yaml.safe_load((REPO / "inventories" / "vsphere-lab" / "hosts.yml").read_text())
    assert {g: v["hosts"] for g, v in shipped["all"]["children"].items()} == {
        g: v["hosts"] for g, v in served.items()
    }
    site = yaml.safe_load((REPO / "inventories/vsphere-lab/group_vars/all.yml").read_text())
    assert "password" not in json.dumps(site).lower()
