"""The paths guest's parts without the lab (seconds): its domain XML, set-up script and SSH
forward (lab/vqual_lab/paths_guest.py, docs/lab-guests.md)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from vqual_lab import paths_guest
from vqual_lab.paths_guest import PathsGuest


def _domain() -> ET.Element:
    guest = PathsGuest("vqual-tmp-paths", "kvm2", "127.0.0.66", 2266, Path("/x"),
                       "/srv/vqual-shared/guests/paths-abc")
    return ET.fromstring(paths_guest.domain_xml(guest, "ssh-ed25519 AAAA test"))


def test_one_lun_is_reached_over_two_virtio_scsi_controllers_with_one_serial_and_wwn() -> None:
    devices = _domain().find("devices")
    assert devices is not None
    controllers = [c.get("index") for c in devices.findall("controller")
                   if c.get("type") == "scsi" and c.get("model") == "virtio-scsi"]
    assert controllers == ["0", "1"]
    luns = [d for d in devices.findall("disk") if d.find("target").get("bus") == "scsi"]  # type: ignore[union-attr]
    assert len(luns) == 2
    assert {d.find("source").get("file") for d in luns} == {  # type: ignore[union-attr]
        "/srv/vqual-shared/guests/paths-abc/lun.img"}
    assert [d.find("address").get("controller") for d in luns] == ["0", "1"]  # type: ignore[union-attr]
    for disk in luns:
        assert disk.find("shareable") is not None
        assert disk.findtext("serial") == paths_guest.LUN_SERIAL
        assert disk.findtext("wwn") == paths_guest.LUN_WWN


def test_the_bond_nics_come_after_the_ssh_nic_so_they_are_eth1_and_eth2() -> None:
    root = _domain()
    nics = root.findall("devices/interface")
    assert [n.find("mac").get("address") for n in nics] == list(paths_guest.BOND_MACS)  # type: ignore[union-attr]
    assert [n.find("address").get("slot") for n in nics] == ["0x11", "0x12"]  # type: ignore[union-attr]
    args = [a.get("value") for a in root.iter("{http://libvirt.org/schemas/domain/qemu/1.0}arg")]
    assert "virtio-net-pci,netdev=vqualnet0,addr=0x10" in args
    assert "user,id=vqualnet0,restrict=on,hostfwd=tcp:127.0.0.66:2266-:22" in args


def test_the_setup_makes_the_bond_itself_and_waits_for_both_paths() -> None:
    script = paths_guest.SETUP_SCRIPT.format(modules="bonding", nics="eth1 eth2")
    assert "modprobe bonding max_bonds=0" in script
    assert "ip link add bond0 type bond mode active-backup miimon 100" in script
    assert "grep -c '^mpatha active')\" = 2" in script


def test_the_team_variant_makes_team0_with_teamd_instead_of_the_bond() -> None:
    import json

    script = paths_guest.TEAM_SETUP_SCRIPT.format(modules="team", nics="eth1 eth2")
    assert "ip link add bond0" not in script and "teamd" not in paths_guest.SETUP_SCRIPT
    config = script.split("teamd -d -c '", 1)[1].split("'", 1)[0]
    assert json.loads(config) == {"device": "team0", "runner": {"name": "activebackup"},
                                  "link_watch": {"name": "ethtool"},
                                  "ports": {"eth1": {}, "eth2": {}}}
    assert "teamdctl team0 state dump" in script and "^mpatha active" in script
    assert "libteam-utils" in paths_guest.PATHS_PACKAGES
    assert {"team", "team_mode_activebackup"} <= set(paths_guest.PATHS_MODULES)


@pytest.mark.parametrize(("hosts", "forward"), [
    ("", ("127.0.0.66", 2266)),
    ("kvm1=127.0.0.111,kvm2=127.0.0.112", ("127.0.0.166", 2366)),
])
def test_the_forward_follows_the_labs_kvm1_address(
    monkeypatch: pytest.MonkeyPatch, hosts: str, forward: tuple[str, int]
) -> None:
    monkeypatch.setenv("VQUAL_LAB_KVM_HOSTS", hosts)
    assert paths_guest.forward() == forward


def test_only_throwaway_names_are_defined(tmp_path: Path) -> None:
    from vqual_lab.component import LabContext
    from vqual_lab.guests import VmBudgetError

    ctx = LabContext(tmp_path, tmp_path / "run", None, lambda _m: None)
    image = paths_guest.PathsImage("0" * 64, tmp_path, tmp_path / "p.img", tmp_path / "k",
                                   tmp_path / "i", "6.1", False, 0.0)
    with pytest.raises(VmBudgetError, match="must be named vqual-tmp-"):
        paths_guest.define(ctx, image, "clone3", "kvm1", "127.0.0.66", 2266)
