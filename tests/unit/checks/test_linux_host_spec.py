"""The shipped Linux host protocol loads, resolves against the local inventory, and runs here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from qualification.checks import Observation, compare_across, evaluate, get_check
from qualification.spec.inventory import InventoryModel
from qualification.spec.loader import load_spec
from qualification.spec.plan import build_plan

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
SPEC = COLLECTION / "specs" / "linux-virt-host.yaml"
HOST_VARS = REPO / "inventories" / "local" / "host_vars" / "localhost.yml"


def _plan() -> Any:
    hostvars = yaml.safe_load(HOST_VARS.read_text())
    inventory = InventoryModel.from_hostvars(
        {"localhost": hostvars}, {"linux_hosts": ["localhost"]}
    )
    return build_plan(load_spec(SPEC), inventory)


def test_spec_loads_with_at_least_40_iq_tests() -> None:
    spec = load_spec(SPEC)
    assert len(spec.tests) >= 40
    assert {t.protocol for t in spec.tests} == {"IQ"}


def test_spec_covers_every_area_of_a_linux_virtualization_host() -> None:
    used = {t.check for t in load_spec(SPEC).tests}
    assert {
        "os_release",
        "kernel_release",
        "package_version",
        "packages_installed",
        "service_active",
        "process_running",
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
        "group_members",
        "kernel_module_loaded",
        "libvirt_config",
    } <= used


def test_risk_levels_select_fewer_tests_for_lower_risk() -> None:
    tests = load_spec(SPEC).tests
    counts = {level: sum(level in t.risk for t in tests) for level in ("high", "medium", "low")}
    assert counts["high"] == len(tests)
    assert counts["high"] > counts["medium"] > counts["low"] > 0


def test_every_value_from_resolves_for_the_local_host() -> None:
    plan = _plan()
    (target,) = plan.targets
    assert target.name == "localhost" and target.risk == "high"
    for test in target.tests:
        if "value_from" in test.expect:
            assert test.expect.get("value") is not None or "min" in test.expect, test.test_id


def _load_observations_module() -> Any:
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("vqual_host_observations_spec", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_protocol_runs_on_this_machine_without_evaluation_errors() -> None:
    # Verdicts depend on the machine (a container fails many of them, honestly); what must
    # hold anywhere: requests deduplicate, every test gets a verdict, and every error is the
    # probe's (could not observe), never a check's extract or compare failing.
    (target,) = _plan().targets
    requests = {}
    for test in target.tests:
        request = get_check(test.check).request(test.params)
        requests[request.key()] = request.to_json()
    assert len(requests) < len(target.tests)
    answers = _load_observations_module().HostObserver().observe_all(list(requests.values()))
    verdicts = {}
    for test in target.tests:
        check = get_check(test.check)
        observation = Observation.from_json(answers[check.request(test.params).key()])
        if test.expect["op"] == "same_across_hosts":
            outcome = compare_across(check, {"localhost": observation}, test.params, test.expect)[
                "localhost"
            ]
        else:
            outcome = evaluate(check, observation, test.params, test.expect)
        verdicts[test.test_id] = outcome.verdict
        if outcome.verdict == "error":
            assert observation.error, test.test_id
            assert "extract failed" not in (outcome.reason or "")
            assert "compare failed" not in (outcome.reason or "")
        else:
            assert outcome.verdict in ("pass", "fail"), test.test_id
    assert len(verdicts) == len(target.tests)
    assert verdicts["IQ-OS-002"] in ("pass", "fail")
    assert verdicts["IQ-DNS-001"] == "pass"  # localhost resolves on any machine
