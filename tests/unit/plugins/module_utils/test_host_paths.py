"""The host probe's bond, team and multipath observations, on the real kernel, teamd and
multipathd output of the lab's paths guest (tests/fixtures/paths, captured from
``vqual-tmp-paths``: Debian 6.1 kernel, multipath-tools 0.9.4, libteam-utils 1.31) and on
sysfs trees made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ansible_collections.vqual.qualification.plugins.module_utils import host_paths
from ansible_collections.vqual.qualification.plugins.module_utils.host_observations import (
    OBSERVATIONS,
    HostObserver,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "paths"


def _text(name: str) -> str:
    return (FIXTURES / name).read_text()


def _proc_with(tmp_path: Path, **bonds: str) -> HostObserver:
    proc = tmp_path / "proc"
    (proc / "net" / "bonding").mkdir(parents=True)
    for name, fixture in bonds.items():
        shutil.copyfile(FIXTURES / fixture, proc / "net" / "bonding" / name)
    return HostObserver(paths={"proc": str(proc), "sys_class_net": str(tmp_path / "net")})


def test_the_probe_offers_bonds_and_multipath() -> None:
    assert OBSERVATIONS["bonds"] is host_paths.observe_bonds
    assert OBSERVATIONS["multipath"] is host_paths.observe_multipath


def test_a_healthy_active_backup_bond_parses_with_both_members_up() -> None:
    bond = host_paths.parse_proc_bonding(_text("bond0-healthy.txt"))
    assert bond["mode"] == "active-backup"
    assert bond["mode_text"] == "fault-tolerance (active-backup)"
    assert bond["mii_status"] == "up" and bond["active_member"] == "eth1"
    assert bond["member_count"] == 2
    assert bond["members_up"] == ["eth1", "eth2"] and bond["members_down"] == []
    assert [m["link_failures"] for m in bond["members"]] == [0, 0]


def test_a_degraded_bond_names_the_member_whose_link_is_down() -> None:
    bond = host_paths.parse_proc_bonding(_text("bond0-degraded.txt"))
    assert bond["members_up"] == ["eth1"] and bond["members_down"] == ["eth2"]
    assert bond["members"][1] == {"name": "eth2", "mii_status": "down", "link_failures": 1}
    assert bond["mii_status"] == "up"  # active-backup: the bond itself still carries traffic


def test_observe_bonds_reads_every_bond_and_keeps_the_kernel_text(tmp_path: Path) -> None:
    observer = _proc_with(tmp_path, bond0="bond0-degraded.txt", bond1="bond0-healthy.txt")
    mode = tmp_path / "net" / "bond1" / "bonding" / "mode"
    mode.parent.mkdir(parents=True)
    mode.write_text("balance-xor 2\n")  # sysfs names the mode as `ip link` does
    found = observer.observe("bonds", {})
    assert found["error"] is None
    bonds = found["value"]["bonds"]
    assert sorted(bonds) == ["bond0", "bond1"]
    assert bonds["bond0"]["members_down"] == ["eth2"] and bonds["bond1"]["mode"] == "balance-xor"
    assert "Slave Interface: eth2\nMII Status: down" in found["raw"]


def test_observe_bonds_without_the_bonding_driver_finds_none(tmp_path: Path) -> None:
    # This machine's own `ip` lists its (no) team devices: the real tool, no stand-in.
    found = HostObserver(paths={"proc": str(tmp_path)}).observe("bonds", {})
    assert found["error"] is None and found["value"] == {"bonds": {}, "teams": {}}
    assert "no bonding driver" in found["raw"]


def test_a_healthy_team_parses_like_a_bond_with_the_runner_as_mode() -> None:
    team = host_paths.parse_teamdctl_state(_text("teamdctl-team0-healthy.json"))
    assert team["mode"] == "active-backup" and team["runner"] == "activebackup"
    assert team["active_member"] == "eth1" and team["member_count"] == 2
    assert team["members_up"] == ["eth1", "eth2"] and team["members_down"] == []


def test_a_degraded_team_names_the_port_whose_link_is_down() -> None:
    team = host_paths.parse_teamdctl_state(_text("teamdctl-team0-degraded.json"))
    assert team["members_up"] == ["eth1"] and team["members_down"] == ["eth2"]
    assert team["members"][1] == {"name": "eth2", "link_up": False, "link_watch_up": False,
                                  "mii_status": "down"}
    failover = host_paths.parse_teamdctl_state(_text("teamdctl-team0-failover.json"))
    assert failover["active_member"] == "eth2" and failover["members_down"] == ["eth1"]


def test_a_port_with_its_link_up_but_its_link_watch_down_is_down() -> None:
    state = json.loads(_text("teamdctl-team0-healthy.json"))
    state["ports"]["eth2"]["link_watches"]["up"] = False  # e.g. arp_ping gets no answer
    team = host_paths.parse_teamdctl_state(json.dumps(state))
    assert team["members_down"] == ["eth2"]


def _stand_in(tmp_path: Path, name: str, body: str) -> str:
    """A stand-in for a tool that cannot run here (no team driver on this kernel): a script
    answering with the output the real tool gave in the lab's paths guest."""
    tool = tmp_path / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)
    return str(tool)


def test_observe_bonds_reads_every_team_from_teamdctl(tmp_path: Path) -> None:
    ip = _stand_in(tmp_path, "ip", f'[ "$*" = "-j link show type team" ] && '
                   f'cat {FIXTURES / "ip-link-type-team.json"}\n')
    teamdctl = _stand_in(tmp_path, "teamdctl", f'[ "$*" = "team0 state dump" ] && '
                         f'cat {FIXTURES / "teamdctl-team0-degraded.json"}\n')
    observer = HostObserver(paths={"proc": str(tmp_path / "proc")},
                            executables={"ip": ip, "teamdctl": teamdctl})
    found = observer.observe("bonds", {})
    assert found["error"] is None, found["error"]
    assert found["value"]["bonds"] == {}
    assert found["value"]["teams"]["team0"]["members_down"] == ["eth2"]
    assert "$ teamdctl team0 state dump\n{" in found["raw"]


def test_a_team_whose_teamd_does_not_answer_has_no_members_and_says_why(
    tmp_path: Path,
) -> None:
    ip = _stand_in(tmp_path, "ip", f"cat {FIXTURES / 'ip-link-type-team.json'}\n")
    teamdctl = _stand_in(tmp_path, "teamdctl", "echo 'connect failed' >&2; exit 1\n")
    observer = HostObserver(paths={"proc": str(tmp_path / "proc")},
                            executables={"ip": ip, "teamdctl": teamdctl})
    team = observer.observe("bonds", {})["value"]["teams"]["team0"]
    assert team["member_count"] == 0 and team["mode"] is None
    assert team["error"] == "teamdctl team0 state dump: connect failed"


def test_multipathd_json_gives_each_path_and_its_three_states() -> None:
    healthy = host_paths.parse_multipathd_json(_text("multipathd-maps-healthy.json"))
    assert list(healthy) == ["mpatha"]
    assert healthy["mpatha"]["wwid"] == "35000c500a1b2c3d4"
    assert healthy["mpatha"]["path_count"] == 2 and healthy["mpatha"]["active_paths"] == 2
    assert healthy["mpatha"]["failed_paths"] == []
    degraded = host_paths.parse_multipathd_json(_text("multipathd-maps-degraded.json"))
    assert degraded["mpatha"]["active_paths"] == 1
    assert degraded["mpatha"]["failed_paths"] == ["sdb (failed/offline/faulty)"]


def _fake_multipathd(tmp_path: Path, body: str) -> str:
    tool = tmp_path / "multipathd"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(0o755)
    return str(tool)


def test_observe_multipath_asks_multipathd(tmp_path: Path) -> None:
    fixture = FIXTURES / "multipathd-maps-degraded.json"
    tool = _fake_multipathd(tmp_path, f'[ "$*" = "show maps json" ] && cat {fixture}\n')
    found = HostObserver(executables={"multipathd": tool}).observe("multipath", {})
    assert found["error"] is None, found["error"]
    assert found["method"] == "host.multipath multipathd show maps json"
    assert found["value"]["maps"]["mpatha"]["failed_paths"] == ["sdb (failed/offline/faulty)"]
    assert json.loads(found["raw"].split("\n", 1)[1])["maps"][0]["name"] == "mpatha"


def _sysfs(tmp_path: Path, states: dict[str, str]) -> Path:
    block = tmp_path / "block"
    dm = block / "dm-0"
    (dm / "dm").mkdir(parents=True)
    (dm / "dm" / "uuid").write_text("mpath-35000c500a1b2c3d4\n")
    (dm / "dm" / "name").write_text("mpatha\n")
    (dm / "slaves").mkdir()
    for dev, state in states.items():
        (dm / "slaves" / dev).mkdir()
        (block / dev / "device").mkdir(parents=True)
        (block / dev / "device" / "state").write_text(state + "\n")
    other = block / "dm-1" / "dm"  # not a multipath map (an LVM volume)
    other.mkdir(parents=True)
    (other / "uuid").write_text("LVM-abc\n")
    (other / "name").write_text("vg-root\n")
    return block


def test_without_a_running_multipathd_sysfs_gives_the_maps(tmp_path: Path) -> None:
    block = _sysfs(tmp_path, {"sda": "running", "sdb": "offline"})
    tool = _fake_multipathd(tmp_path, "echo 'cannot connect' >&2; exit 1\n")
    found = HostObserver(paths={"sys_block": str(block)}, executables={"multipathd": tool}
                         ).observe("multipath", {})
    value: Any = found["value"]
    assert found["error"] is None and list(value["maps"]) == ["mpatha"]
    mpatha = value["maps"]["mpatha"]
    assert mpatha["source"] == "sysfs" and mpatha["active_paths"] == 1
    assert mpatha["failed_paths"] == ["sdb (n/a/offline/n/a)"]
    assert "multipathd does not answer" in found["raw"]


def test_no_multipath_at_all_is_an_empty_answer_not_an_error(tmp_path: Path) -> None:
    found = HostObserver(paths={"sys_block": str(tmp_path / "none")},
                         executables={"multipathd": ""}).observe("multipath", {})
    assert found["error"] is None and found["value"] == {"maps": {}}
