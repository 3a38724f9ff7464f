"""ST-OQ-23 (VQ-56): risk inheritance and risk-based selection, as `vqual selftest` checks it."""

from __future__ import annotations

from qualification.selftest import risk as risk_check
from qualification.selftest import self_checks


def _check():
    (check,) = [c for c in self_checks(None, lambda: None) if c.test_id == "ST-OQ-23"]  # type: ignore[arg-type,return-value]
    return check


def test_st_oq_23_passes_on_the_real_rules():
    check = _check()
    assert check.requirement == "VQ-56"
    outcome = check.run()
    assert outcome.ok, outcome
    assert outcome.observed["kvm-b"] == ["high", ["T-ALL", "T-HIGH"]]


def test_st_oq_23_fails_when_the_cluster_no_longer_passes_its_risk_on(monkeypatch):
    # kvm-b leaves the cluster: it keeps its own low risk, which the check must catch
    hostvars = {k: dict(v) for k, v in risk_check._HOSTVARS.items()}
    del hostvars["kvm-b"]["vqual_cluster"]
    monkeypatch.setattr(risk_check, "_HOSTVARS", hostvars)
    outcome = _check().run()
    assert not outcome.ok
    assert outcome.observed["kvm-b"] == ["low", ["T-ALL"]]
