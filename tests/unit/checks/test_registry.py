"""The check registry, evaluate() and compare_across()."""

from __future__ import annotations

from typing import Any, Mapping

import pytest

from qualification.checks import (
    Observation,
    ProbeRequest,
    compare_across,
    evaluate,
    get_check,
    known_check_types,
    register,
    validate_params,
)
from qualification.checks import registry as check_registry
from qualification.errors import SpecError

HOST_TYPES = {
    "os_release",
    "kernel_release",
    "package_version",
    "packages_installed",
    "process_running",
    "service_active",
    "file_exists",
    "file_mode",
    "file_owner",
    "file_checksum",
    "file_content",
    "sysctl",
    "cpu_model",
    "cpu_count",
    "cpu_flags",
    "memory_total_mb",
    "dmi",
    "mount",
    "listening_ports",
    "sshd_setting",
    "time_sync",
    "dns_resolves",
    "user_exists",
    "group_exists",
    "user_shell",
    "group_members",
    "kernel_module_loaded",
    "libvirt_config",
    "command_output",
}


class Broken:
    """A check whose extract raises, as a buggy check or an odd probe answer would."""

    name = "broken_for_test"
    description = "raises in extract"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("host", "nothing")

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        raise KeyError("field")


def test_every_host_check_type_is_registered() -> None:
    assert HOST_TYPES <= known_check_types()


def test_get_check_of_an_unknown_type_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown check type 'os_relase'"):
        get_check("os_relase")


def test_register_refuses_a_second_check_under_a_taken_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(check_registry, "_REGISTRY", dict(check_registry._REGISTRY))
    broken = Broken()
    register(broken)
    register(broken)  # the same object again is harmless
    assert get_check("broken_for_test") is broken
    with pytest.raises(ValueError, match="already registered"):
        register(Broken())


def test_validate_params_names_the_problem() -> None:
    assert validate_params("sysctl", {"key": "net.ipv4.ip_forward"}) is None
    assert validate_params("nope", {}) == "unknown check type 'nope'"
    assert validate_params("sysctl", {}) == "sysctl: parameter key is required"
    problem = validate_params("sysctl", {"key": "x", "extra": 1})
    assert problem is not None and "unknown parameter(s) extra" in problem


def test_evaluate_pass_and_fail() -> None:
    check = get_check("sysctl")
    params = {"key": "net.ipv4.ip_forward"}
    expect = {"op": "equals", "value": "0"}
    passed = evaluate(check, Observation(value="0", method="host.sysctl"), params, expect)
    failed = evaluate(check, Observation(value="1", method="host.sysctl"), params, expect)
    assert (passed.verdict, passed.observed, passed.reason) == ("pass", "0", None)
    assert (failed.verdict, failed.observed) == ("fail", "1")
    assert failed.reason == 'expected "0", observed "1"'
    assert failed.expected == expect


def test_evaluate_probe_error_is_error_with_the_reason() -> None:
    outcome = evaluate(
        get_check("sshd_setting"),
        Observation(error="sshd is not installed\n(no sshd in PATH)"),
        {"key": "permitrootlogin"},
        {"op": "equals", "value": "no"},
    )
    assert outcome.verdict == "error"
    assert outcome.reason == "sshd is not installed (no sshd in PATH)"  # one line
    assert outcome.observed is None


def test_evaluate_not_executed_keeps_its_reason() -> None:
    outcome = evaluate(
        get_check("cpu_model"),
        Observation(not_executed="check mode"),
        {},
        {"op": "equals", "value": "x"},
    )
    assert (outcome.verdict, outcome.reason) == ("not-executed", "check mode")


def test_evaluate_turns_an_extract_exception_into_error() -> None:
    outcome = evaluate(Broken(), Observation(value={}), {}, {"op": "absent"})
    assert outcome.verdict == "error"
    assert outcome.reason == "broken_for_test: extract failed: KeyError: 'field'"


def test_evaluate_turns_a_malformed_expectation_into_error() -> None:
    outcome = evaluate(
        get_check("cpu_model"), Observation(value={"model": "X"}), {}, {"op": "in", "value": "X"}
    )
    assert outcome.verdict == "error"
    assert outcome.observed == "X"
    assert outcome.reason is not None and "compare failed" in outcome.reason


def test_evaluate_same_across_hosts_alone_is_an_error_not_a_pass() -> None:
    outcome = evaluate(
        get_check("cpu_model"),
        Observation(value={"model": "X"}),
        {},
        {"op": "same_across_hosts", "group": "cluster"},
    )
    assert outcome.verdict == "error"


def _cpu(model: str) -> Observation:
    return Observation(value={"model": model}, method="host.cpu")


SAME = {"op": "same_across_hosts", "group": "cluster"}


def test_compare_across_all_equal_passes() -> None:
    outcomes = compare_across(
        get_check("cpu_model"), {"hv1": _cpu("EPYC"), "hv2": _cpu("EPYC")}, {}, SAME
    )
    assert {h: o.verdict for h, o in outcomes.items()} == {"hv1": "pass", "hv2": "pass"}
    assert outcomes["hv1"].reason is None


def test_compare_across_fails_the_host_that_differs_and_names_hosts_and_values() -> None:
    outcomes = compare_across(
        get_check("cpu_model"),
        {"hv1": _cpu("EPYC"), "hv2": _cpu("EPYC"), "hv3": _cpu("Xeon")},
        {},
        SAME,
    )
    assert [outcomes[h].verdict for h in ("hv1", "hv2", "hv3")] == ["pass", "pass", "fail"]
    reason = outcomes["hv3"].reason
    assert reason is not None
    for text in ("hv3", '"Xeon"', "hv1, hv2", '"EPYC"'):
        assert text in reason
    assert outcomes["hv3"].expected["value"] == "EPYC"
    assert outcomes["hv3"].expected["majority_hosts"] == ["hv1", "hv2"]
    assert outcomes["hv1"].reason is not None and "hv3" in outcomes["hv1"].reason


def test_compare_across_tie_fails_every_host() -> None:
    outcomes = compare_across(
        get_check("cpu_model"), {"hv1": _cpu("A"), "hv2": _cpu("B")}, {}, SAME
    )
    assert {o.verdict for o in outcomes.values()} == {"fail"}
    assert "no majority" in (outcomes["hv1"].reason or "")


def test_compare_across_unobserved_hosts_do_not_vote() -> None:
    outcomes = compare_across(
        get_check("cpu_model"),
        {"hv1": _cpu("A"), "hv2": Observation(error="unreachable"), "hv3": _cpu("A")},
        {},
        SAME,
    )
    assert outcomes["hv2"].verdict == "error"
    assert outcomes["hv1"].verdict == outcomes["hv3"].verdict == "pass"


def test_compare_across_extract_failure_is_error_for_that_host() -> None:
    outcomes = compare_across(Broken(), {"hv1": Observation(value=1)}, {}, SAME)
    assert outcomes["hv1"].verdict == "error"


def test_compare_across_compares_structured_values() -> None:
    outcomes = compare_across(
        get_check("cpu_flags"),
        {
            "a": Observation(value={"flags": ["vmx", "sse"]}),
            "b": Observation(value={"flags": ["sse", "vmx"]}),
            "c": Observation(value={"flags": ["sse"]}),
        },
        {},
        SAME,
    )
    assert [outcomes[h].verdict for h in "abc"] == ["pass", "pass", "fail"]
