"""The bond and multipath check types (URS-CL-03) on the probe's answers to the real output
of the lab's paths guest (tests/fixtures/paths), through evaluate() as a run decides them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.vqual.qualification.plugins.module_utils import host_paths
from qualification.checks import Observation, evaluate, get_check, validate_params
from qualification.verdict import Verdict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "paths"


def bonds(**files: str) -> Observation:
    value = {"bonds": {name: host_paths.parse_proc_bonding((FIXTURES / f).read_text())
                       for name, f in files.items()}}
    return Observation(value=value, method="host.bonds")


def maps(fixture: str) -> Observation:
    parsed = host_paths.parse_multipathd_json((FIXTURES / fixture).read_text())
    return Observation(value={"maps": parsed}, method="host.multipath")


def decide(check: str, observation: Observation, params: dict[str, Any],
           expect: dict[str, Any]) -> Any:
    assert validate_params(check, params) is None
    return evaluate(get_check(check), observation, params, expect)


def test_a_healthy_bond_passes_mode_members_and_links() -> None:
    healthy = bonds(bond0="bond0-healthy.txt")
    assert decide("bond", healthy, {"field": "mode"},
                  {"op": "equals", "value": "active-backup"}).verdict is Verdict.PASS
    assert decide("bond", healthy, {"field": "member_count"},
                  {"op": "equals", "value": 2}).verdict is Verdict.PASS
    assert decide("bond", healthy, {"field": "members_down"},
                  {"op": "equals", "value": []}).verdict is Verdict.PASS


def test_a_degraded_bond_fails_naming_the_member_with_each_link_measured() -> None:
    outcome = decide("bond", bonds(bond0="bond0-degraded.txt"), {"field": "members_down"},
                     {"op": "equals", "value": []})
    assert outcome.verdict is Verdict.FAIL
    assert outcome.observed == ["bond0/eth2"]
    assert outcome.reason.startswith("member link down: bond0/eth2")
    assert outcome.measured == {"bond0": {"mode": "active-backup", "active_member": "eth1",
                                          "members": {"eth1": "up", "eth2": "down"}}}
    assert decide("bond", bonds(bond0="bond0-degraded.txt"), {"field": "members_up"},
                  {"op": "range", "min": 2}).verdict is Verdict.FAIL


def test_every_bond_is_judged_by_the_worst_unless_one_is_named() -> None:
    two = bonds(bond0="bond0-degraded.txt", bond1="bond0-healthy.txt")
    assert decide("bond", two, {"field": "members_down"},
                  {"op": "equals", "value": []}).observed == ["bond0/eth2"]
    assert decide("bond", two, {"field": "members_up"}, {"op": "range", "min": 2}).observed == 1
    assert decide("bond", two, {"field": "members_down", "name": "bond1"},
                  {"op": "equals", "value": []}).verdict is Verdict.PASS


def test_a_host_without_bonds_or_without_the_named_one_fails_saying_so() -> None:
    none = Observation(value={"bonds": {}})
    outcome = decide("bond", none, {"field": "mode"}, {"op": "equals", "value": "active-backup"})
    assert outcome.verdict is Verdict.FAIL and outcome.observed is None
    assert "no bond or team on this host" in outcome.reason
    named = decide("bond", bonds(bond0="bond0-healthy.txt"), {"field": "mode", "name": "bond9"},
                   {"op": "equals", "value": "active-backup"})
    assert named.verdict is Verdict.FAIL and "no bond or team bond9 on this host (found: bond0)" in named.reason


def teams(**files: str) -> dict[str, Any]:
    return {name: host_paths.parse_teamdctl_state((FIXTURES / f).read_text())
            for name, f in files.items()}


def test_a_team_is_judged_as_a_bond_with_its_runner_and_each_port_measured() -> None:
    healthy = Observation(value={"bonds": {}, "teams": teams(team0="teamdctl-team0-healthy.json")})
    assert decide("bond", healthy, {"field": "mode"},
                  {"op": "equals", "value": "active-backup"}).verdict is Verdict.PASS
    assert decide("bond", healthy, {"field": "member_count"},
                  {"op": "equals", "value": 2}).verdict is Verdict.PASS
    degraded = Observation(value={"bonds": {},
                                  "teams": teams(team0="teamdctl-team0-degraded.json")})
    outcome = decide("bond", degraded, {"field": "members_down"}, {"op": "equals", "value": []})
    assert outcome.verdict is Verdict.FAIL and outcome.observed == ["team0/eth2"]
    assert outcome.reason.startswith("member link down: team0/eth2")
    assert outcome.measured == {"team0": {
        "mode": "active-backup", "runner": "activebackup", "active_member": "eth1",
        "members": {"eth1": "up", "eth2": "down"}}}


def test_bonds_and_teams_are_judged_together_by_the_worst() -> None:
    both = bonds(bond0="bond0-healthy.txt")
    both.value["teams"] = teams(team0="teamdctl-team0-failover.json")
    outcome = decide("bond", both, {"field": "members_down"}, {"op": "equals", "value": []})
    assert outcome.observed == ["team0/eth1"]
    assert sorted(outcome.measured) == ["bond0", "team0"]
    assert decide("bond", both, {"field": "members_down", "name": "bond0"},
                  {"op": "equals", "value": []}).verdict is Verdict.PASS


def test_a_team_whose_teamd_does_not_answer_fails_with_the_reason_measured() -> None:
    silent: dict[str, Any] = {
        "mode": None, "runner": None, "active_member": None, "members": [], "member_count": 0,
        "members_up": [], "members_down": [], "error": "teamdctl team0 state dump: connect failed"}
    outcome = decide("bond", Observation(value={"bonds": {}, "teams": {"team0": silent}}),
                     {"field": "member_count"}, {"op": "equals", "value": 2})
    assert outcome.verdict is Verdict.FAIL and outcome.observed == 0
    assert outcome.measured["team0"]["error"] == "teamdctl team0 state dump: connect failed"


def test_a_multipath_device_with_a_failed_path_fails_naming_it() -> None:
    degraded = maps("multipathd-maps-degraded.json")
    failed = decide("multipath", degraded, {"field": "failed_paths"},
                    {"op": "equals", "value": []})
    assert failed.verdict is Verdict.FAIL
    assert failed.observed == ["mpatha: sdb (failed/offline/faulty)"]
    assert failed.measured["mpatha"]["paths"] == {"sda": "active/running/ready",
                                                   "sdb": "failed/offline/faulty"}
    active = decide("multipath", degraded, {"field": "active_paths"}, {"op": "range", "min": 2})
    assert active.verdict is Verdict.FAIL and active.observed == 1
    assert "failed path: mpatha: sdb" in active.reason


def test_a_healthy_multipath_device_passes() -> None:
    healthy = maps("multipathd-maps-healthy.json")
    assert decide("multipath", healthy, {"field": "active_paths"},
                  {"op": "range", "min": 2}).verdict is Verdict.PASS
    assert decide("multipath", healthy, {"field": "path_count", "device": "mpatha"},
                  {"op": "equals", "value": 2}).verdict is Verdict.PASS
    assert decide("multipath", healthy, {"field": "failed_paths"},
                  {"op": "equals", "value": []}).verdict is Verdict.PASS


@pytest.mark.parametrize(("check", "params", "problem"), [
    ("bond", {"field": "speed"}, "bond: parameter field must be one of mode, member_count"),
    ("bond", {}, "bond: parameter field is required"),
    ("multipath", {"field": "paths", "device": "mpatha"},
     "multipath: parameter field must be one of path_count"),
])
def test_bad_parameters_are_refused_in_one_line(
    check: str, params: dict[str, Any], problem: str
) -> None:
    found = validate_params(check, params)
    assert found is not None and found.startswith(problem)
