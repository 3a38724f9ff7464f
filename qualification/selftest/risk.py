"""OQ self check of risk-based qualification (VQ-56, URS-RISK-01): a target's qualification
depth follows the most critical application it carries, on itself or on its cluster, and
that level selects its tests."""

from __future__ import annotations

from typing import Any

from qualification.selftest.base import Outcome, SelfCheck
from qualification.spec import Expectation, InventoryModel, TestDef, assess_risk

#: A cluster of two hosts (one carries a high-risk application in a VM, the other a low-risk
#: one) and a lone host with a low-risk application.
_HOSTVARS: dict[str, dict[str, Any]] = {
    "kvm-a": {
        "vqual_target_kinds": ["kvm_host"],
        "vqual_cluster": "pcs",
        "vqual_applications": [{"name": "LIMS", "risk": "high", "vm": "vm-lims"}],
    },
    "kvm-b": {
        "vqual_target_kinds": ["kvm_host"],
        "vqual_cluster": "pcs",
        "vqual_applications": [{"name": "wiki", "risk": "low", "validated": False}],
    },
    "kvm-c": {
        "vqual_target_kinds": ["kvm_host"],
        "vqual_applications": [{"name": "print", "risk": "low"}],
    },
}


def _test(test_id: str, risk: tuple[str, ...]) -> TestDef:
    return TestDef(
        id=test_id, title=test_id, protocol="IQ", requirements=("URS-RISK-01",),
        applies_to=("kvm_host",), risk=risk, check="kernel_release", params={},
        expect=Expectation(op="absent"), acceptance="selftest",
    )


#: Expected: kvm-b inherits its cluster's high risk; kvm-c stays low; a high-only test runs
#: on the high-risk targets only.
_WANT = {
    "kvm-a": ["high", ["T-ALL", "T-HIGH"]],
    "kvm-b": ["high", ["T-ALL", "T-HIGH"]],
    "kvm-c": ["low", ["T-ALL"]],
}


def risk_rule() -> Outcome:
    inventory = InventoryModel.from_hostvars(_HOSTVARS, {"all": sorted(_HOSTVARS)})
    tests = (_test("T-ALL", ("high", "medium", "low")), _test("T-HIGH", ("high",)))
    got = {}
    for host in sorted(_HOSTVARS):
        level = assess_risk(inventory, host).level
        got[host] = [level, [t.id for t in tests if t.applies(("kvm_host",), level)]]
    return Outcome(got == _WANT, got, None if got == _WANT else f"expected {_WANT}")


def risk_checks() -> list[SelfCheck]:
    """OQ: risk inheritance and risk-based test selection."""
    return [
        SelfCheck(
            "ST-OQ-23",
            "a target's risk is the highest of what it and its cluster carry, and selects its "
            "tests",
            "OQ",
            "VQ-56",
            "qualification.spec.assess_risk, TestDef.applies",
            {"op": "equals", "value": _WANT},
            risk_rule,
        ),
    ]
