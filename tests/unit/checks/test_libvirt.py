"""libvirt check types: parameters, shared requests, and the shipped spec evaluated on real
observations of the test driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.checks import (
    Observation,
    evaluate,
    get_check,
    known_check_types,
    validate_params,
)
from qualification.checks.base import StepNotExecuted
from qualification.checks.libvirt import (
    CAPABILITY_PATHS,
    NODEINFO_FIELDS,
    LibvirtGuestOq,
    capability,
)
from qualification.platforms.libvirt.guest_cycle import CYCLE_PARTS
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.observations import answer_requests
from qualification.checks.vocabulary import LIFECYCLE_STEPS
from qualification.spec.loader import load_spec
from qualification.spec.plan import lookup_expected

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
SPEC = COLLECTION / "specs" / "libvirt-embedded.yaml"
HOST_VARS = REPO / "inventories" / "local" / "host_vars" / "libvirt-test.yml"
LIBVIRT_CHECKS = {"hypervisor_version", "libvirt_nodeinfo", "libvirt_capability", "libvirt_oq"}


def test_registered_at_import() -> None:
    assert LIBVIRT_CHECKS <= known_check_types()
    for name in LIBVIRT_CHECKS:
        assert get_check(name).request(_default_params(name)).probe == "libvirt"


def _default_params(name: str) -> dict[str, Any]:
    return {
        "hypervisor_version": {},
        "libvirt_nodeinfo": {"field": "cpus"},
        "libvirt_capability": {"path": "host.arch"},
        "libvirt_oq": {"step": "start"},
    }[name]


@pytest.mark.parametrize(
    ("check", "params", "error"),
    [
        ("hypervisor_version", {}, None),
        ("hypervisor_version", {"field": "type"}, None),
        ("hypervisor_version", {"field": "build"}, "parameter field must be one of"),
        ("hypervisor_version", {"component": "x"}, "unknown parameter(s) component"),
        ("libvirt_nodeinfo", {}, "parameter field is required"),
        ("libvirt_nodeinfo", {"field": "cpus"}, None),
        ("libvirt_nodeinfo", {"field": "cpu"}, "parameter field must be one of"),
        ("libvirt_capability", {"path": "guest.os_types"}, None),
        ("libvirt_capability", {"path": "host/arch"}, "parameter path must be one of"),
        ("libvirt_capability", {}, "parameter path is required"),
        ("libvirt_oq", {"step": "snapshot_revert"}, None),
        ("libvirt_oq", {"step": "migrate"}, "parameter step must be one of"),
        ("libvirt_oq", {"step": "start", "extra": 1}, "unknown parameter(s) extra"),
    ],
)
def test_parameters_are_validated(check: str, params: dict[str, Any], error: str | None) -> None:
    found = validate_params(check, params)
    if error is None:
        assert found is None
    else:
        assert found is not None and error in found and found.startswith(check)


def test_tests_of_a_type_share_one_request() -> None:
    oq = get_check("libvirt_oq")
    assert len({oq.request({"step": s}).key() for s in LIFECYCLE_STEPS}) == 1
    node = get_check("libvirt_nodeinfo")
    assert len({node.request({"field": f}).key() for f in NODEINFO_FIELDS}) == 1


def test_every_capability_path_exists_in_parsed_capabilities() -> None:
    observed = answer_requests(
        "test:///default",
        [get_check("libvirt_capability").request({"path": "host.arch"}).to_json()],
    )
    (value,) = [o["value"] for o in observed.values()]
    for path in CAPABILITY_PATHS:
        capability(value, path)  # raises KeyError for a path the probe does not return


def _expect(test: Any, expected: dict[str, Any]) -> dict[str, Any]:
    expect = test.expect.to_json()
    if test.expect.value_from:
        value = lookup_expected(expected, test.expect.value_from)
        if test.expect.op == "range":
            expect.update(value)
        else:
            expect["value"] = value
    return expect


def _run_spec(
    uri: str, expected: dict[str, Any], *, check_mode: bool = False
) -> dict[str, tuple[str, Any, str | None]]:
    spec = load_spec(SPEC)
    requests = {}
    for test in spec.tests:
        request = get_check(test.check).request(test.params)
        requests[request.key()] = request.to_json()
    observations = answer_requests(
        uri, list(requests.values()), run_id="spec", check_mode=check_mode
    )
    results = {}
    for test in spec.tests:
        check = get_check(test.check)
        obs = Observation.from_json(observations[check.request(test.params).key()])
        outcome = evaluate(check, obs, test.params, _expect(test, expected))
        results[test.id] = (outcome.verdict, outcome.observed, outcome.reason)
    return results


def _host_expected() -> dict[str, Any]:
    data = yaml.safe_load(HOST_VARS.read_text(encoding="utf-8"))
    assert data["vqual_libvirt_uri"] == "test:///default"
    assert data["vqual_target_kinds"] == ["libvirt_hypervisor"]
    return dict(data["vqual_expected"])


def test_spec_params_are_valid_and_requirements_declared() -> None:
    spec = load_spec(SPEC)
    assert {t.check for t in spec.tests} == LIBVIRT_CHECKS
    for test in spec.tests:
        assert validate_params(test.check, test.params) is None, test.id
        assert set(test.requirements) <= set(spec.requirements), test.id
    assert {t.params["step"] for t in spec.tests if t.check == "libvirt_oq"} == set(LIFECYCLE_STEPS)


def test_shipped_spec_passes_on_the_test_driver_with_committed_expectations() -> None:
    results = _run_spec("test:///default", _host_expected())
    assert {test_id: r[0] for test_id, r in results.items()} == dict.fromkeys(results, "pass")
    assert results["IQ-LV-005"][1] == 16
    assert results["IQ-LV-011"][1] == ["testSecurity"]
    assert results["OQ-LV-005"][1] == "pass"


def test_a_differing_host_fails_naming_both_values() -> None:
    expected = _host_expected()
    expected["nodeinfo"] = {**expected["nodeinfo"], "cpus": 128}
    expected["capabilities"] = {**expected["capabilities"], "secmodels": ["apparmor"]}
    expected["libvirt_min_version"] = "99.0.0"
    results = _run_spec("test:///default", expected)
    assert results["IQ-LV-005"][0] == "fail" and "128" in results["IQ-LV-005"][2]
    assert results["IQ-LV-011"][0] == "fail" and "apparmor" in results["IQ-LV-011"][2]
    assert results["IQ-LV-001"][0] == "fail" and "99.0.0" in results["IQ-LV-001"][2]
    assert results["IQ-LV-002"][0] == "pass"


def test_unreachable_hypervisor_is_error_for_every_test() -> None:
    results = _run_spec("test:///no/such/node.xml", _host_expected())
    assert {r[0] for r in results.values()} == {"error"}
    assert all("connect failed" in (r[2] or "") for r in results.values())


def test_check_mode_leaves_oq_not_executed() -> None:
    results = _run_spec("test:///default", _host_expected(), check_mode=True)
    verdicts = {test_id: r[0] for test_id, r in results.items()}
    assert {v for k, v in verdicts.items() if k.startswith("OQ-")} == {"not-executed"}
    assert {v for k, v in verdicts.items() if k.startswith("IQ-")} == {"pass"}


def test_a_failed_oq_step_fails_its_test_and_blocks_the_later_ones(tmp_path: Path) -> None:
    # Put the test host into maintenance with vqual's marker: start is then refused.
    oq = get_check("libvirt_oq")
    with LibvirtPlatform("test:///default", state_dir=tmp_path) as lv:
        lv.power_off("test")
        lv.enter_maintenance()
    # The marker outlives that connection; the probe's own connection honours it.
    observations = answer_requests(
        "test:///default", [oq.request({"step": "start"}).to_json()], state_dir=tmp_path
    )
    obs = Observation.from_json(observations[oq.request({"step": "start"}).key()])
    expect = {"op": "equals", "value": "pass"}
    assert evaluate(oq, obs, {"step": "define"}, expect).verdict == "pass"
    start = evaluate(oq, obs, {"step": "start"}, expect)
    assert start.verdict == "fail" and start.observed == "fail"
    blocked = evaluate(oq, obs, {"step": "stop"}, expect)
    assert blocked.verdict == "not-executed" and "start" in (blocked.reason or "")
    assert len(obs.actions) == 3  # define, start (refused), cleanup


def test_a_step_the_platform_could_not_perform_is_not_executed_not_fail() -> None:
    from qualification.checks import evaluate, get_check
    from qualification.checks.base import Observation

    check = get_check("libvirt_oq")
    value = {"steps": {"snapshot_create": {"verdict": "not-executed",
                                           "reason": "snapshots need a disk in a pool"}}}
    outcome = evaluate(check, Observation(value=value, method="libvirt.oq_lifecycle"),
                       {"step": "snapshot_create"}, {"op": "equals", "value": "pass"})
    assert outcome.verdict == "not-executed"
    assert outcome.reason == "snapshots need a disk in a pool"


# -- the guest cycle OQ's check type (libvirt_guest_oq) ------------------------------------

def test_the_four_cycle_tests_share_one_run_and_read_their_part() -> None:
    check = LibvirtGuestOq()
    keys = {check.request({"test": t, "field": "verdict"}).key() for t in CYCLE_PARTS}
    assert len(keys) == 1
    assert check.request({"test": "clone"}).key() != check.request({"test": "migrate"}).key()
    assert check.validate_params({"test": "snapshot", "field": "marker_read"}) is None
    assert "field" in str(check.validate_params({"test": "maintenance", "field": "marker_read"}))
    assert "load_mib" in str(check.validate_params({"test": "clone", "load_mib": 8}))
    value = {
        "clone": {"verdict": "pass", "reason": None, "uuid": "u1", "macs": ["52:54:00:01:02:03"]},
        "power_cycle": {"verdict": "fail", "reason": "boot id did not change"},
        "snapshot": {"verdict": "pass", "reason": None, "marker_read": "m1"},
        "maintenance": {"verdict": "not-executed", "reason": "host kvm1 still runs clone1"},
    }
    assert check.extract(value, {"test": "clone"}).value == "pass"
    assert check.extract(value, {"test": "clone", "field": "uuid"}).value == "u1"
    # A failed part carries its own reason and its values, not the other parts'.
    power = check.extract(value, {"test": "power_cycle"})
    assert (power.value, power.reason) == ("fail", "boot id did not change")
    assert "uuid" not in power.measured and "marker_read" not in power.measured
    assert check.extract(value, {"test": "snapshot", "field": "marker_read"}).value == "m1"
    with pytest.raises(StepNotExecuted, match="clone1"):
        check.extract(value, {"test": "maintenance"})
    with pytest.raises(StepNotExecuted, match="boot id did not change"):
        check.extract(value, {"test": "power_cycle", "field": "boot_ids"})
