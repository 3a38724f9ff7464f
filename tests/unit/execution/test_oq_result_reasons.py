"""A failed or not-executed OQ test says why in its own ``check.result`` record, with the
values its verdict rests on, not only "expected pass, observed fail" (issue 11)."""

from __future__ import annotations

from typing import Any

from qualification.execution.evaluation import evaluate_target, requests_for
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.oq import lifecycle_observation


def _t(test_id: str, check: str, params: dict[str, Any], expect: dict[str, Any]) -> dict[str, Any]:
    return {"test_id": test_id, "title": test_id, "protocol": "OQ", "requirements": ["URS-OPS-02"],
            "target": "kvm1", "check": check, "params": params, "expect": expect,
            "acceptance": "-"}


def _records(tests: list[dict[str, Any]], value: dict[str, Any],
             actions: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    reqs = requests_for(tests)
    (key,) = set(reqs.test_keys.values())
    observation = {"value": value, "method": "libvirt OQ", "actions": actions or []}
    results, _actions, _cross = evaluate_target(
        tests, {key: observation}, reqs, started="t0", finished="t1", duration_ms=1.0)
    return {r["test_id"]: r for r in results}


# OQ-KVM-001 and -002 as specs/kvm-cluster.yaml has them: one migration run, two tests.
MIGRATE = [
    _t("OQ-KVM-001", "libvirt_guest_oq", {"test": "migrate", "load_mib": 64, "field": "verdict"},
       {"op": "equals", "value": "pass"}),
    _t("OQ-KVM-002", "libvirt_guest_oq",
       {"test": "migrate", "load_mib": 64, "field": "interruption_s"}, {"op": "range", "max": 2.0}),
]


def test_a_failed_migration_names_its_reason_and_measured_values_in_its_own_record() -> None:
    # What run_migration_heartbeat returns when the guest agent stopped answering after the
    # switch-over: the run failed in its step guest.heartbeat_read_after, with what it had
    # measured until then.
    reason = ("guest.heartbeat_read_after: vqual-tmp-r1-mig: guest agent did not answer "
              "within 120 s (waited 121.3 s; last: guest agent guest-ping: Guest agent is "
              "not responding: Guest agent not available for now)")
    value = {
        "vm": "vqual-tmp-r1-mig", "source": "qemu+tcp://127.0.0.11/system",
        "destination": "qemu+tcp://127.0.0.12/system", "verdict": "fail", "reason": reason,
        "agent_after_boot_s": 19.2, "heartbeat_start_s": 2.0, "load_running_after_s": 0.8,
        "baseline_gap_s": 0.111, "migration_s": 3.048,
        "cleanup": {"verdict": "pass", "reason": None},
    }
    records = _records(MIGRATE, value)

    verdict = records["OQ-KVM-001"]
    assert (verdict["verdict"], verdict["observed"]) == ("fail", "fail")
    # The reason is in this record, before the comparison's own words.
    assert verdict["reason"].startswith(reason)
    assert '"pass"' in verdict["reason"]
    assert verdict["measured"]["migration_s"] == 3.048
    assert verdict["measured"]["agent_after_boot_s"] == 19.2
    assert verdict["measured"]["baseline_gap_s"] == 0.111
    assert verdict["measured"]["cleanup"] == {"verdict": "pass", "reason": None}
    assert "verdict" not in verdict["measured"] and "reason" not in verdict["measured"]

    # The interruption was not measured: not-executed, with the same reason and values.
    interruption = records["OQ-KVM-002"]
    assert interruption["verdict"] == "not-executed" and interruption["observed"] is None
    assert reason in interruption["reason"]
    assert interruption["measured"] == verdict["measured"]


def test_a_passed_migration_records_the_parts_of_its_interruption() -> None:
    value = {"vm": "vqual-tmp-r2-mig", "verdict": "pass", "reason": None,
             "interruption_s": 0.235, "max_gap_s": 0.193, "guest_frozen_s": 0.235,
             "baseline_gap_s": 0.111, "migration_s": 3.048, "agent_after_migration_s": 0.1,
             "beats_in_window": 62, "same_boot": True, "load_mib": 64}
    records = _records(MIGRATE, value)
    assert records["OQ-KVM-002"]["verdict"] == "pass"
    assert records["OQ-KVM-002"]["observed"] == 0.235
    measured = records["OQ-KVM-002"]["measured"]
    assert (measured["max_gap_s"], measured["guest_frozen_s"]) == (0.193, 0.235)
    assert measured["agent_after_migration_s"] == 0.1


def test_an_interruption_over_the_limit_says_so_with_its_parts() -> None:
    value = {"vm": "vqual-tmp-r3-mig", "verdict": "pass", "reason": None,
             "interruption_s": 2.6, "max_gap_s": 2.6, "guest_frozen_s": 0.4,
             "baseline_gap_s": 0.11, "migration_s": 9.2}
    record = _records(MIGRATE, value)["OQ-KVM-002"]
    assert record["verdict"] == "fail" and "2.6" in record["reason"]
    assert record["measured"]["max_gap_s"] == 2.6 and record["measured"]["migration_s"] == 9.2


def test_a_failed_lifecycle_step_names_its_reason_and_duration_in_its_own_record() -> None:
    # A real lifecycle run on libvirt's test driver, on a name that is taken ("test" is the
    # driver's own domain): define fails, the steps that need it are not executed.
    with LibvirtPlatform("test:///default") as platform:
        obs = lifecycle_observation(platform, "test", {"steps": ["define", "start"]},
                                    "libvirt", "test:///default")
        assert platform.vm_exists("test")  # not ours: left alone
    tests = [
        _t("OQ-LV-001", "libvirt_oq", {"step": "define"}, {"op": "equals", "value": "pass"}),
        _t("OQ-LV-002", "libvirt_oq", {"step": "start"}, {"op": "equals", "value": "pass"}),
    ]
    records = _records(tests, obs["value"], obs["actions"])
    define = records["OQ-LV-001"]
    assert define["verdict"] == "fail"
    assert "create vm test refused: it already exists" in define["reason"]
    assert define["measured"]["vm"] == "test"
    assert isinstance(define["measured"]["duration_ms"], int)
    start = records["OQ-LV-002"]
    assert start["verdict"] == "not-executed" and start["reason"] == "step define did not pass"
    assert start["measured"] == {"vm": "test", "duration_ms": 0}


def test_a_check_without_a_run_behind_it_records_no_measured_field() -> None:
    tests = [_t("IQ-A-001", "sysctl", {"key": "kernel.ostype"}, {"op": "equals", "value": "Linux"})]
    reqs = requests_for(tests)
    (key,) = set(reqs.test_keys.values())
    results, _a, _c = evaluate_target(tests, {key: {"value": {"kernel.ostype": "Linux"}}}, reqs,
                                      started="t0", finished="t1", duration_ms=1.0)
    assert "measured" not in results[0]
