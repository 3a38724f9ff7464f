"""The failover OQ (oq_guest_failover, OQ-KVM-008/-009) without a lab: its configuration,
the measured attempts of the site's commands, the verdict from the recorded values, and the
not-executed paths with the failed attempt in the test's own record. libvirt's test driver
is the hypervisor (it runs no guest OS); the site commands are real processes. The real
failover on a pacemaker cluster is tests/integration/test_kvm_failover.py (lab, slow)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from qualification.checks import evaluate
from qualification.checks.base import Observation
from qualification.checks.failover import judge
from qualification.checks.libvirt import LibvirtGuestOq
from qualification.platforms.base import BadArgs
from qualification.platforms.libvirt import guest_failover as gf
from qualification.platforms.libvirt.observations import answer_requests
from qualification.verdict import Verdict

PY = sys.executable


def _config(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"domain": "test", "peers": ["test:///default"],
                            "fail_command": [PY, "-c", "pass"],
                            "restore_command": [PY, "-c", "pass"], "bound_s": 2}
    return {**base, **kw}


def _probe(failover: dict[str, Any] | None) -> dict[str, Any]:
    args = {"failover": failover} if failover is not None else {}
    obs: dict[str, Any] = answer_requests(
        "test:///default", [{"key": "f", "method": "oq_guest_failover", "args": args}],
        run_id="R1")["f"]
    return obs


def _judged(obs: dict[str, Any], field: str = "verdict") -> Any:
    params = {"test": "failover", "field": field}
    expect = ({"op": "equals", "value": "pass"} if field == "verdict"
              else {"op": "range", "max": 180.0})
    return evaluate(LibvirtGuestOq(), Observation.from_json(obs), params, expect)


def _passed() -> dict[str, Any]:
    return {"domain": "d", "failed_host": "kvm1", "restarted_on": "kvm2", "restart_s": 30.9,
            "running_s": 3.1, "bound_s": 240.0, "marker_written": "m1", "marker_read": "m1",
            "verdict": "pass", "reason": None}


def test_the_configuration_names_what_is_missing_or_wrong() -> None:
    cfg = gf.FailoverConfig.from_args(_config(prepare_command=["x"]))
    assert cfg.peers == ("test:///default",) and cfg.prepare_command == ("x",)
    assert cfg.versions_command == () and cfg.bound_s == 2.0
    for bad, name in (({"domain": ""}, "domain"), ({"peers": []}, "peers"),
                      ({"fail_command": "poweroff"}, "fail_command"),
                      ({"restore_command": [1]}, "restore_command"),
                      ({"bound_s": True}, "bound_s")):
        with pytest.raises(BadArgs, match=f"failover.{name}"):
            gf.FailoverConfig.from_args(_config(**bad))


def test_placeholders_are_the_host_and_its_address_only() -> None:
    argv = gf.expand(["ipmi", "-H", "{host}-bmc", "{address}", "{other}"], "kvm1", "10.0.0.1")
    assert argv == ["ipmi", "-H", "kvm1-bmc", "10.0.0.1", "{other}"]


def test_an_attempt_measures_command_exit_stderr_tail_and_time() -> None:
    done = gf.attempt([PY, "-c", ("import sys; print('a'); print('b\\nc', file=sys.stderr); "
                                 "sys.exit(3)")])
    assert done["exit"] == 3 and done["stdout_tail"] == ["a"]
    assert done["stderr_tail"] == ["b", "c"] and done["seconds"] >= 0
    assert gf.attempt_reason("the fail command", done).startswith(
        "the fail command failed (exit 3 after ")
    missing = gf.attempt(["/nonexistent/vqual-fail"])
    assert missing["exit"] is None and "No such file" in missing["stderr_tail"][0]
    late = gf.attempt([PY, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert late["exit"] is None and "timed out" in late["stderr_tail"][0]


def test_versions_lines_are_read_with_or_without_an_architecture() -> None:
    text = "pacemaker 2.1.5-1\ncorosync\t3.1.7-1\nlibqb100:amd64 2.0.6-2\nnoise here too\n"
    assert gf.parse_versions(text) == {"pacemaker": "2.1.5-1", "corosync": "3.1.7-1",
                                       "libqb100": "2.0.6-2"}


def test_the_verdict_comes_from_the_recorded_values() -> None:
    assert judge(_passed()) == ("pass", None)
    verdict, reason = judge({**_passed(), "marker_read": "m2"})
    assert verdict == "fail" and "marker read back on kvm2" in str(reason)
    assert judge({**_passed(), "restarted_on": "kvm1"})[0] == "fail"
    assert judge({**_passed(), "restarted_on": None, "restart_s": None})[0] == "fail"
    assert judge({**_passed(), "restart_s": 241.0})[0] == "fail"
    assert judge({**_passed(), "marker_written": None, "marker_read": None})[0] == "fail"
    assert judge({"attempt_failed": True, "reason": "why"}) == ("not-executed", "why")


def test_the_check_judges_again_and_reports_the_measured_values() -> None:
    ok = _judged({"value": _passed()})
    assert ok.verdict is Verdict.PASS and ok.measured["restarted_on"] == "kvm2"
    assert _judged({"value": _passed()}, "restart_s").observed == 30.9
    lie = _judged({"value": {**_passed(), "marker_read": "other"}})
    assert lie.verdict is Verdict.FAIL and "marker read back" in str(lie.reason)
    # no time from a run that did not pass: not-executed, never a number
    timing = _judged({"value": {**_passed(), "restarted_on": None}}, "restart_s")
    assert timing.verdict is Verdict.NOT_EXECUTED


def test_without_an_ha_cluster_configured_the_tests_are_not_executed() -> None:
    obs = _probe(None)
    assert obs["error"] is None and "vqual_libvirt_oq.failover" in obs["not_executed"]
    assert _judged(obs).verdict is Verdict.NOT_EXECUTED


def test_a_failed_prepare_is_not_executed_with_the_attempt_in_the_record() -> None:
    fail = [PY, "-c", ("import sys; print('pacemakerd: no systemd', file=sys.stderr); "
                      "sys.exit(7)")]
    obs = _probe(_config(prepare_command=fail))
    assert obs["error"] is None and obs["not_executed"] is None  # the check decides
    outcome = _judged(obs)
    assert outcome.verdict is Verdict.NOT_EXECUTED
    assert "the prepare command failed (exit 7" in str(outcome.reason)
    attempt = outcome.measured["attempt"]
    assert attempt["command"] == fail and attempt["exit"] == 7
    assert attempt["stderr_tail"] == ["pacemakerd: no systemd"] and attempt["seconds"] >= 0
    assert "failed_host" not in outcome.measured and obs["actions"] == []  # nothing was failed
    assert _judged(obs, "restart_s").verdict is Verdict.NOT_EXECUTED


def test_a_guest_whose_agent_never_answers_is_not_executed_and_no_host_is_failed(
        tmp_path: Any) -> None:
    # The test driver's domain "test" runs, but no guest OS and no agent: the run stops
    # before the failure, so the fail command (which would write a file) never runs.
    flag = tmp_path / "failed"
    obs = _probe(_config(fail_command=[PY, "-c", f"open({str(flag)!r}, 'w')"]))
    outcome = _judged(obs)
    assert outcome.verdict is Verdict.NOT_EXECUTED and "test" in str(outcome.reason)
    assert not flag.exists()
    missing = _judged(_probe(_config(domain="nowhere", bound_s=1)))
    assert missing.verdict is Verdict.NOT_EXECUTED
    assert "nowhere runs on none of" in str(missing.reason)
