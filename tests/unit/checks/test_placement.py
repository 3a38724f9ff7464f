"""cluster_placement (URS-RISK-02, URS-CL-02) decided on inventory data, through the same
evaluate() a run uses: the inventory probe's answer from a recorded snapshot, then the check."""

from __future__ import annotations

from typing import Any

import pytest

from qualification.checks import evaluate, get_check, validate_params
from qualification.checks.base import Observation
from qualification.checks.placement import answer_placement
from qualification.spec import InventoryModel
from qualification.verdict import Verdict

CHECK = get_check("cluster_placement")
ABSENT = {"op": "absent"}
DECIDED = {"op": "in", "value": ["allowed", "not allowed"]}


def _snapshot(hosts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The snapshot a run records, built by the real inventory model."""
    model = InventoryModel.from_hostvars(hosts, {"all": sorted(hosts)})
    return model.snapshot()


def _decide(hosts: dict[str, dict[str, Any]], target: str, aspect: str, expect: dict[str, Any]):
    request = CHECK.request({"aspect": aspect}).to_json()
    answer = answer_placement([request], _snapshot(hosts), target)[request["key"]]
    return evaluate(CHECK, Observation.from_json(answer), {"aspect": aspect}, expect)


def _host(**extra: Any) -> dict[str, Any]:
    return {"vqual_target_kinds": ["kvm_host"], "vqual_cluster": "pcs", **extra}


LIMS = {"name": "LIMS", "risk": "high", "vm": "vm-lims"}
WIKI = {"name": "wiki", "risk": "low", "validated": False, "vm": "vm-wiki"}


# ---------------------------------------------------------------- URS-RISK-02


def test_mixing_not_allowed_fails_naming_both_applications_and_the_decision():
    decision = {"allowed": False, "reference": "QA-DEC-12"}
    hosts = {
        "kvm1": _host(vqual_mixing=decision, vqual_applications=[LIMS]),
        "kvm2": _host(vqual_mixing=decision, vqual_applications=[WIKI]),
    }
    outcome = _decide(hosts, "kvm2", "mixing", ABSENT)
    assert outcome.verdict == Verdict.FAIL
    assert "validated LIMS (kvm1/vm-lims) and unvalidated wiki (kvm2/vm-wiki)" in outcome.reason
    assert "does not allow mixing (QA-DEC-12)" in outcome.reason
    assert outcome.measured["decision"] == "not allowed"
    shown = _decide(hosts, "kvm1", "mixing_decision", DECIDED)
    assert (shown.verdict, shown.observed) == (Verdict.PASS, "not allowed")
    assert shown.measured == {"cluster": "pcs", "reference": "QA-DEC-12"}


def test_mixing_allowed_passes_and_records_the_decision():
    decision = {"allowed": True, "reference": "QA-DEC-13"}
    hosts = {
        "kvm1": _host(vqual_mixing=decision, vqual_applications=[LIMS]),
        "kvm2": _host(vqual_mixing=decision, vqual_applications=[WIKI]),
    }
    outcome = _decide(hosts, "kvm1", "mixing", ABSENT)
    assert outcome.verdict == Verdict.PASS
    assert outcome.measured["decision"] == "allowed"
    assert outcome.measured["unvalidated"] == ["wiki (kvm2/vm-wiki)"]


def test_no_decision_fails_only_where_the_cluster_mixes():
    mixed = {"kvm1": _host(vqual_applications=[LIMS, WIKI])}
    outcome = _decide(mixed, "kvm1", "mixing", ABSENT)
    assert outcome.verdict == Verdict.FAIL and "no decision is recorded" in outcome.reason
    assert _decide(mixed, "kvm1", "mixing_decision", DECIDED).verdict == Verdict.FAIL
    only_validated = {"kvm1": _host(vqual_applications=[LIMS])}
    assert _decide(only_validated, "kvm1", "mixing", ABSENT).verdict == Verdict.PASS


def test_hosts_of_a_cluster_that_disagree_on_the_decision_are_an_error_naming_them():
    hosts = {
        "kvm1": _host(vqual_mixing={"allowed": True}),
        "kvm2": _host(vqual_mixing={"allowed": False}),
    }
    outcome = _decide(hosts, "kvm1", "mixing_decision", DECIDED)
    assert outcome.verdict == Verdict.ERROR
    assert "the hosts of cluster pcs disagree on vqual_mixing" in outcome.reason
    assert "kvm1: {'allowed': True}, kvm2: {'allowed': False}" in outcome.reason


def test_a_malformed_decision_is_an_error():
    outcome = _decide({"kvm1": _host(vqual_mixing="yes")}, "kvm1", "mixing", ABSENT)
    assert outcome.verdict == Verdict.ERROR
    assert "vqual_mixing of cluster pcs must be {allowed: true|false, reference}" in outcome.reason


# ---------------------------------------------------------------- URS-CL-02


def test_both_hosts_in_one_compartment_fail_naming_both():
    hosts = {
        "kvm1": _host(vqual_site="DC1", vqual_fire_compartment="FC-1", vqual_rack="R1"),
        "kvm2": _host(vqual_site="DC1", vqual_fire_compartment="FC-1", vqual_rack="R2"),
    }
    outcome = _decide(hosts, "kvm1", "compartments", ABSENT)
    assert outcome.verdict == Verdict.FAIL
    assert "cluster pcs spans 1 fire compartment(s) (DC1/FC-1: kvm1, kvm2)" in outcome.reason
    assert "at least 2" in outcome.reason
    assert outcome.measured["racks"] == {"kvm1": "R1", "kvm2": "R2"}


def test_two_compartments_evenly_pass_and_an_uneven_spread_fails_per_policy():
    even = {
        f"kvm{i}": _host(vqual_fire_compartment=fc)
        for i, fc in enumerate(["FC-1", "FC-2", "FC-1", "FC-2"], start=1)
    }
    outcome = _decide(even, "kvm1", "compartments", ABSENT)
    assert outcome.verdict == Verdict.PASS
    assert outcome.measured["compartments"] == {"FC-1": ["kvm1", "kvm3"], "FC-2": ["kvm2", "kvm4"]}
    uneven = {
        f"kvm{i}": _host(vqual_fire_compartment=fc)
        for i, fc in enumerate(["FC-1", "FC-1", "FC-1", "FC-2"], start=1)
    }
    outcome = _decide(uneven, "kvm1", "compartments", ABSENT)
    assert outcome.verdict == Verdict.FAIL and "not evenly distributed" in outcome.reason
    relaxed = {h: {**v, "vqual_compartment_policy": {"max_imbalance": 2}} for h, v in uneven.items()}
    assert _decide(relaxed, "kvm1", "compartments", ABSENT).verdict == Verdict.PASS


def test_a_host_without_a_compartment_is_named():
    hosts = {"kvm1": _host(vqual_fire_compartment="FC-1"), "kvm2": _host()}
    outcome = _decide(hosts, "kvm1", "compartments", ABSENT)
    assert outcome.verdict == Verdict.FAIL and "kvm2 has no vqual_fire_compartment" in outcome.reason


def test_an_ha_pair_in_one_compartment_fails_and_split_passes():
    pair = [["vm-a", "vm-b"]]
    same = {
        "kvm1": _host(vqual_fire_compartment="FC-1", vqual_vms=["vm-a"], vqual_anti_affinity=pair),
        "kvm2": _host(vqual_fire_compartment="FC-1", vqual_vms=["vm-b"], vqual_anti_affinity=pair),
    }
    outcome = _decide(same, "kvm1", "anti_affinity", ABSENT)
    assert outcome.verdict == Verdict.FAIL
    assert "vm-a (kvm1) and vm-b (kvm2) share fire compartment FC-1" in outcome.reason
    split = {**same, "kvm2": {**same["kvm2"], "vqual_fire_compartment": "FC-2"}}
    outcome = _decide(split, "kvm1", "anti_affinity", ABSENT)
    assert outcome.verdict == Verdict.PASS
    assert outcome.measured["placed"] == {"vm-a": "kvm1 in FC-1", "vm-b": "kvm2 in FC-2"}


def test_a_cluster_without_anti_affinity_groups_passes_recording_that_it_has_none():
    outcome = _decide({"kvm1": _host()}, "kvm1", "anti_affinity", ABSENT)
    assert outcome.verdict == Verdict.PASS
    assert outcome.measured == {"cluster": "pcs", "groups": [], "placed": {}}


def test_a_vm_of_a_group_on_no_host_of_the_cluster_is_named():
    hosts = {"kvm1": _host(vqual_fire_compartment="FC-1", vqual_vms=["vm-a"],
                           vqual_anti_affinity=[["vm-a", "vm-z"]])}
    outcome = _decide(hosts, "kvm1", "anti_affinity", ABSENT)
    assert outcome.verdict == Verdict.FAIL and "vm-z runs on no host of cluster pcs" in outcome.reason


@pytest.mark.parametrize(
    ("params", "message"),
    [({}, "aspect is required"), ({"aspect": "racks"}, "must be one of"),
     ({"aspect": "mixing", "x": 1}, "unknown parameter")],
)
def test_bad_params_are_refused(params, message):
    assert message in (validate_params("cluster_placement", params) or "")
