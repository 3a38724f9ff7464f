"""From planned tests to probe requests, and from observations to check results."""

from __future__ import annotations

from typing import Any

from qualification.execution.evaluation import (
    error_results,
    evaluate_cross_host,
    evaluate_target,
    requests_for,
)


def _t(test_id: str, check: str, params: dict[str, Any], expect: dict[str, Any],
       target: str = "h1") -> dict[str, Any]:
    return {"test_id": test_id, "title": test_id, "protocol": "IQ", "requirements": ["URS-HV-02"],
            "target": target, "check": check, "params": params, "expect": expect,
            "acceptance": "-"}


def test_requests_are_deduplicated_across_tests() -> None:
    tests = [
        _t("IQ-A-001", "file_mode", {"path": "/etc/passwd"}, {"op": "equals", "value": "0644"}),
        _t("IQ-A-002", "file_owner", {"path": "/etc/passwd"}, {"op": "equals", "value": "root:root"}),
        _t("IQ-A-003", "sysctl", {"key": "kernel.ostype"}, {"op": "equals", "value": "Linux"}),
    ]
    reqs = requests_for(tests)
    keys = {reqs.test_keys[t["test_id"]] for t in tests}
    # file mode and owner come from one stat of the same file: one request, not two.
    assert reqs.test_keys["IQ-A-001"] == reqs.test_keys["IQ-A-002"]
    assert len(keys) == 2
    assert sum(len(v) for v in reqs.by_probe.values()) == 2
    assert reqs.cross_host == ()


def test_evaluation_gives_pass_fail_and_error_with_reasons() -> None:
    tests = [
        _t("IQ-A-001", "sysctl", {"key": "kernel.ostype"}, {"op": "equals", "value": "Linux"}),
        _t("IQ-A-002", "sysctl", {"key": "kernel.ostype"}, {"op": "equals", "value": "Plan9"}),
        _t("IQ-A-003", "sysctl", {"key": "kernel.nope"}, {"op": "equals", "value": "1"}),
    ]
    reqs = requests_for(tests)
    k_ok, k_missing = reqs.test_keys["IQ-A-001"], reqs.test_keys["IQ-A-003"]
    observations = {
        k_ok: {"value": "Linux", "method": "host.sysctl kernel.ostype", "raw": "Linux"},
        k_missing: {"error": "no such sysctl: kernel.nope", "method": "host.sysctl kernel.nope"},
    }
    results, actions, cross = evaluate_target(
        tests, observations, reqs, started="2026-01-01T00:00:00.000000Z",
        finished="2026-01-01T00:00:01.000000Z", duration_ms=1000.0,
    )
    by_id = {r["test_id"]: r for r in results}
    assert by_id["IQ-A-001"]["verdict"] == "pass"
    assert by_id["IQ-A-002"]["verdict"] == "fail"
    assert by_id["IQ-A-002"]["observed"] == "Linux"
    assert by_id["IQ-A-003"]["verdict"] == "error"
    assert "kernel.nope" in by_id["IQ-A-003"]["reason"]
    assert by_id["IQ-A-001"]["method"] == "host.sysctl kernel.ostype"
    assert actions == [] and cross == {}


def test_a_missing_observation_is_an_error_not_a_pass() -> None:
    tests = [_t("IQ-A-001", "sysctl", {"key": "kernel.ostype"}, {"op": "equals", "value": "Linux"})]
    results, _, _ = evaluate_target(tests, {}, requests_for(tests), started="s", finished="f",
                                    duration_ms=0.0)
    assert results[0]["verdict"] == "error"


def test_cross_host_tests_wait_for_every_host_and_name_the_odd_one() -> None:
    expect = {"op": "same_across_hosts", "group": "cluster"}
    by_target = {h: [_t("IQ-CL-001", "cpu_model", {}, expect, target=h)] for h in ("h1", "h2", "h3")}
    cross: dict[str, dict[str, Any]] = {}
    for host, model in (("h1", "EPYC 7443"), ("h2", "EPYC 7443"), ("h3", "Xeon Gold 6338")):
        reqs = requests_for(by_target[host])
        key = reqs.test_keys["IQ-CL-001"]
        results, _, c = evaluate_target(by_target[host], {key: {"value": {"model": model}, "method": "m"}},
                                        reqs, started="s", finished="f", duration_ms=1.0)
        assert results == [], "cross-host tests are not evaluated per host"
        cross[host] = c
    results = {r["target"]: r for r in evaluate_cross_host(by_target, cross)}
    assert results["h1"]["verdict"] == results["h2"]["verdict"] == "pass"
    assert results["h3"]["verdict"] == "fail"
    assert "h3" in results["h3"]["reason"] and "Xeon Gold 6338" in results["h3"]["reason"]


def test_error_results_cover_every_test_with_the_reason() -> None:
    tests = [_t(f"IQ-A-00{i}", "sysctl", {"key": "k"}, {"op": "equals", "value": "1"}) for i in range(3)]
    results = error_results(tests, "host unreachable: timeout")
    assert [r["verdict"] for r in results] == ["error"] * 3
    assert all(r["reason"] == "host unreachable: timeout" for r in results)
