"""Risk inheritance (host, VM, cluster, floor, default) and selection by kind and risk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qualification.spec import InventoryModel, assess_risk, load_spec, select_tests
from qualification.spec.risk import risk_rank
from tests.unit.spec.spec_testlib import TinyRegistry


def model(hosts: dict[str, dict[str, Any]]) -> InventoryModel:
    return InventoryModel.from_hostvars(hosts, {"all": list(hosts)})


def app(name: str, risk: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "risk": risk, **extra}


def test_levels_are_ordered() -> None:
    assert risk_rank("low") < risk_rank("medium") < risk_rank("high")


def test_own_application_sets_the_risk_and_is_named() -> None:
    inv = model({"h1": {"vqual_applications": [app("Wiki", "low"), app("MES", "medium")]}})
    risk = assess_risk(inv, "h1")
    assert risk.level == "medium"
    assert risk.reason == "medium: application 'MES' (medium) on host 'h1'"


def test_cluster_member_application_raises_every_member() -> None:
    inv = model(
        {
            "h1": {"vqual_cluster": "c1", "vqual_applications": [app("Wiki", "low")]},
            "h2": {"vqual_cluster": "c1", "vqual_applications": [app("LIMS", "high", vm="vm7")]},
            "h3": {"vqual_cluster": "c2", "vqual_applications": [app("Print", "low")]},
        }
    )
    h1 = assess_risk(inv, "h1")
    assert h1.level == "high"
    assert "application 'LIMS' (high)" in h1.reason
    assert "host 'h2'" in h1.reason and "cluster 'c1'" in h1.reason and "VM 'vm7'" in h1.reason
    assert assess_risk(inv, "h2").level == "high"
    assert assess_risk(inv, "h3").level == "low"  # another cluster is not affected


def test_floor_raises_but_never_lowers() -> None:
    inv = model(
        {
            "h1": {"vqual_risk": "high", "vqual_applications": [app("Wiki", "low")]},
            "h2": {"vqual_risk": "low", "vqual_applications": [app("MES", "medium")]},
        }
    )
    h1 = assess_risk(inv, "h1")
    assert (h1.level, h1.reason) == ("high", "high: vqual_risk floor 'high' on 'h1'")
    assert assess_risk(inv, "h2").level == "medium"


def test_floor_alone_sets_the_risk() -> None:
    risk = assess_risk(model({"h1": {"vqual_risk": "low"}}), "h1")
    assert (risk.level, risk.sources) == ("low", ("vqual_risk floor 'low' on 'h1'",))


def test_no_application_and_no_floor_is_high_and_says_so() -> None:
    risk = assess_risk(model({"h1": {"vqual_target_kinds": ["linux_host"]}}), "h1")
    assert risk.level == "high"
    assert risk.sources == ()
    assert "no application and no vqual_risk floor" in risk.reason


def test_vm_inherits_applications_declared_for_it_on_its_hypervisor() -> None:
    inv = model(
        {
            "hv1": {"vqual_applications": [app("LIMS", "medium", vm="vm-lims")]},
            "vm-lims": {"vqual_target_kinds": ["clone"], "vqual_applications": [app("a", "low")]},
        }
    )
    risk = assess_risk(inv, "vm-lims")
    assert risk.level == "medium"
    assert risk.reason == (
        "medium: application 'LIMS' (medium) on this VM (declared on host 'hv1')"
    )


def test_every_source_at_the_top_level_is_named() -> None:
    inv = model(
        {
            "h1": {"vqual_cluster": "c", "vqual_applications": [app("A", "high")]},
            "h2": {"vqual_cluster": "c", "vqual_applications": [app("B", "high")]},
        }
    )
    assert assess_risk(inv, "h1").sources == (
        "application 'A' (high) on host 'h1'",
        "application 'B' (high) on host 'h2' of cluster 'c'",
    )


def test_non_validated_applications_count_too() -> None:
    inv = model({"h1": {"vqual_applications": [app("Mail", "medium", validated=False)]}})
    assert assess_risk(inv, "h1").level == "medium"


@pytest.fixture
def spec(tmp_path: Path) -> Any:
    text = """\
apiVersion: vqual/v1
kind: Protocol
metadata: {name: sel, title: Selection, version: "1"}
requirements: [URS-RISK-01]
tests:
  - {id: T-ALL, title: all, protocol: IQ, requirements: [URS-RISK-01],
     applies_to: [linux_host, kvm_host], risk: [high, medium, low], check: os_release,
     params: {field: ID}, expect: {op: equals, value: debian}, acceptance: a}
  - {id: T-HIGH, title: high only, protocol: IQ, requirements: [URS-RISK-01],
     applies_to: [kvm_host], risk: [high], check: os_release,
     params: {field: ID}, expect: {op: equals, value: debian}, acceptance: a}
  - {id: T-LOW, title: low only, protocol: OQ, requirements: [URS-RISK-01],
     applies_to: [esxi], risk: [low], check: os_release,
     params: {field: ID}, expect: {op: equals, value: debian}, acceptance: a}
"""
    path = tmp_path / "sel.yaml"
    path.write_text(text)
    return load_spec(path, registry=TinyRegistry())


@pytest.mark.parametrize(
    ("kinds", "level", "selected"),
    [
        (("kvm_host",), "high", ["T-ALL", "T-HIGH"]),
        (("kvm_host",), "medium", ["T-ALL"]),
        (("linux_host",), "high", ["T-ALL"]),
        (("esxi",), "low", ["T-LOW"]),
        (("esxi",), "high", []),
        (("vcenter",), "high", []),
        ((), "high", []),
        (("esxi", "kvm_host"), "low", ["T-ALL", "T-LOW"]),
    ],
)
def test_selection_by_kind_and_risk(
    spec: Any, kinds: tuple[str, ...], level: str, selected: list[str]
) -> None:
    assert [test.id for test in select_tests(spec, kinds, level)] == selected
