"""The vSphere uplink and datastore path checks (URS-CL-03) on the probe's ``paths`` answer:
the shape the simulator gives (tests/lab/test_vcsim_paths.py) and the cases it cannot give
(two uplinks, a NIC without link, a VMFS datastore with a dead path), written here."""

from __future__ import annotations

from typing import Any

from qualification.checks import Observation, evaluate, get_check, validate_params
from qualification.verdict import Verdict


def vswitch(name: str, uplinks: list[str], standby: tuple[str, ...] = (),
            down: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"name": name, "uplinks": uplinks,
            "active": [u for u in uplinks if u not in standby], "standby": list(standby),
            "links_down": list(down)}


def lun(name: str, states: dict[str, str], datastores: list[str]) -> dict[str, Any]:
    paths = [{"name": p, "state": s} for p, s in states.items()]
    return {"name": name, "paths": paths, "datastores": datastores,
            "working_paths": sum(s in ("active", "standby") for s in states.values())}


def paths(hosts: dict[str, Any], datastores: dict[str, Any] | None = None) -> Observation:
    return Observation(value={"hosts": hosts, "datastores": datastores or {}})


def decide(check: str, obs: Observation, params: dict[str, Any], expect: dict[str, Any]) -> Any:
    assert validate_params(check, params) is None
    return evaluate(get_check(check), obs, params, expect)


#: As the simulator answers: one vSwitch per host with one uplink; local LUNs, one path each.
SIMULATOR = paths(
    {h: {"vswitches": [vswitch("vSwitch0", ["vmnic0"])],
         "luns": [lun("mpx.vmhba0:C0:T0:L0", {"vmhba0:C0:T0:L0": "active"}, [])]}
     for h in ("H0", "H1")},
    {"LocalDS_0": {"type": "OTHER", "luns": []}})


def test_fewer_uplinks_than_the_minimum_fails_naming_each_vswitch() -> None:
    outcome = decide("vsphere_uplinks", SIMULATOR, {"field": "uplinks"}, {"op": "range", "min": 2})
    assert outcome.verdict is Verdict.FAIL and outcome.observed == 1
    assert outcome.reason.startswith(
        "uplinks fewest: H0/vSwitch0 (vmnic0); H1/vSwitch0 (vmnic0)")
    assert outcome.measured["H1/vSwitch0"]["active"] == ["vmnic0"]
    assert decide("vsphere_uplinks", SIMULATOR, {"field": "uplinks"},
                  {"op": "range", "min": 1}).verdict is Verdict.PASS


def test_active_and_standby_uplinks_and_a_link_down() -> None:
    teamed = paths({"H0": {"vswitches": [
        vswitch("vSwitch0", ["vmnic0", "vmnic1"], standby=("vmnic1",), down=("vmnic1",)),
        vswitch("vSwitch1", ["vmnic2", "vmnic3"])], "luns": []}})
    assert decide("vsphere_uplinks", teamed, {"field": "uplinks"},
                  {"op": "range", "min": 2}).verdict is Verdict.PASS
    active = decide("vsphere_uplinks", teamed, {"field": "active_uplinks"},
                    {"op": "range", "min": 2})
    assert active.verdict is Verdict.FAIL and "H0/vSwitch0 (vmnic0)" in active.reason
    down = decide("vsphere_uplinks", teamed, {"field": "links_down"}, {"op": "equals", "value": []})
    assert down.verdict is Verdict.FAIL and down.observed == ["H0/vSwitch0/vmnic1"]
    only = decide("vsphere_uplinks", teamed, {"field": "links_down", "vswitch": "vSwitch1"},
                  {"op": "equals", "value": []})
    assert only.verdict is Verdict.PASS


def test_datastores_backed_by_no_lun_are_not_executed_saying_so() -> None:
    outcome = decide("vsphere_datastore_paths", SIMULATOR, {"field": "working_paths"},
                     {"op": "range", "min": 2})
    assert outcome.verdict is Verdict.NOT_EXECUTED
    assert "no datastore in scope is backed by a SCSI LUN" in outcome.reason
    assert "LocalDS_0: OTHER" in outcome.reason
    every = decide("vsphere_datastore_paths", SIMULATOR,
                   {"field": "working_paths", "all_luns": True}, {"op": "range", "min": 2})
    assert every.verdict is Verdict.FAIL and every.observed == 1


def test_a_vmfs_datastore_with_a_dead_path_fails_naming_it() -> None:
    vmfs = paths({"H0": {"vswitches": [], "luns": [
        lun("naa.600a", {"vmhba64:C0:T0:L1": "active", "vmhba65:C0:T0:L1": "dead"}, ["DS1"]),
        lun("mpx.vmhba0:C0:T0:L0", {"vmhba0:C0:T0:L0": "active"}, [])]}},
        {"DS1": {"type": "VMFS", "luns": ["naa.600a"]}})
    failed = decide("vsphere_datastore_paths", vmfs, {"field": "failed_paths"},
                    {"op": "equals", "value": []})
    assert failed.verdict is Verdict.FAIL
    assert failed.observed == ["H0/naa.600a/vmhba65:C0:T0:L1 (dead)"]
    assert failed.measured == {"H0/naa.600a": {"datastores": ["DS1"], "paths": {
        "vmhba64:C0:T0:L1": "active", "vmhba65:C0:T0:L1": "dead"}}}
    working = decide("vsphere_datastore_paths", vmfs, {"field": "working_paths", "datastore": "DS1"},
                     {"op": "range", "min": 2})
    assert working.verdict is Verdict.FAIL and working.observed == 1


def test_bad_parameters_are_refused_in_one_line() -> None:
    assert validate_params("vsphere_uplinks", {"field": "speed"}) == (
        "vsphere_uplinks: parameter field must be one of uplinks, active_uplinks, links_down")
    assert validate_params("vsphere_datastore_paths", {"field": "failed_paths", "all_luns": "yes"}
                           ) == "vsphere_datastore_paths: parameter all_luns must be a non-empty bool"
    assert validate_params("vsphere_uplinks", {"field": "uplinks", "x": 1}) == (
        "vsphere_uplinks: unknown parameter(s) x")
