"""Probe orchestration: one round trip per probe, evaluation on the controller, with real
probes: the host probe on this machine (in this process) and libvirt's test driver."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qualification.execution.context import load_run_context
from qualification.execution.observing import (
    TARGET_MODULES,
    compare_targets,
    qualify_target,
    unpack_evidence,
)
from qualification.execution.planning import RunPlan, make_plan
from tests.unit.execution.runlib import (
    CHANGE,
    FAILING,
    PASSING,
    RUN,
    LocalModules,
    host_observations,
    local_host,
    test_def,
    write_spec,
)

LIBVIRT = ("libvirt_hypervisor",)
LV_TYPE = test_def("IQ-LV-002", "hypervisor_version", {"field": "type"},
                   {"op": "equals", "value": "TEST"}, kinds=LIBVIRT)
LV_CPUS = test_def("IQ-LV-005", "libvirt_nodeinfo", {"field": "cpus"},
                   {"op": "equals", "value": 16}, kinds=LIBVIRT)
LV_OQ = [
    test_def(f"OQ-LV-00{i}", "libvirt_oq", {"step": step}, {"op": "equals", "value": "pass"},
             kinds=LIBVIRT, protocol="OQ")
    for i, step in enumerate(("define", "start", "stop", "undefine"), start=1)
]
SAME_OS = test_def("IQ-T-010", "os_release", {"field": "ID"},
                   {"op": "same_across_hosts", "group": "cluster"})
TEMPLATE = test_def("IQ-T-020", "template_fingerprint", {"field": "generalised.machine_id_empty"},
                    {"op": "equals", "value": True}, kinds=("master_vm",))


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VQUAL_STATE_DIR", str(tmp_path / "state"))


def _plan(tmp_path: Path, tests: list[dict[str, Any]], hostvars: dict[str, dict[str, Any]]) -> RunPlan:
    spec = write_spec(tmp_path / "specs", tests, with_data=False)
    context = load_run_context(tmp_path / "state", spec, change_id=CHANGE, run_id=RUN)
    groups = {"all": sorted(hostvars), "ungrouped": sorted(hostvars)}
    return make_plan(context, hostvars, groups)


def _vars_of(hostvars: dict[str, Any]) -> Any:
    calls: list[int] = []

    def target_vars() -> dict[str, Any]:
        calls.append(1)
        return {k: v for k, v in hostvars.items() if k.startswith("vqual_")}

    target_vars.calls = calls  # type: ignore[attr-defined]
    return target_vars


def _never(*_: Any) -> Any:
    raise AssertionError("not needed for this target")


def _by_id(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["test_id"]: r for r in results}


def test_a_host_is_observed_in_one_module_call_and_evaluated_here(tmp_path: Path) -> None:
    many = [PASSING, FAILING] + [
        test_def(f"IQ-T-1{i:02d}", "file_mode", {"path": path}, {"op": "regex", "value": "^0[0-7]{3}$"})
        for i, path in enumerate(("/etc/passwd", "/etc/group", "/etc/hostname"))
    ]
    plan = _plan(tmp_path, many, {"localhost": local_host()})
    modules = LocalModules()
    vars_of = _vars_of(local_host())
    done = qualify_target(plan, "localhost", run_module=modules, target_vars=vars_of,
                          fingerprint_image=_never)
    assert len(modules.calls) == 1 and modules.calls[0][0] == TARGET_MODULES["host"]
    # five tests, four observations: /etc/passwd's existence and mode come from one stat
    assert len(modules.calls[0][1]["requests"]) == 4
    assert vars_of.calls == []  # no controller-side probe: nothing is templated
    results = _by_id(done.results)
    assert results["IQ-T-001"]["verdict"] == "pass"
    assert results["IQ-T-002"]["verdict"] == "fail"
    assert results["IQ-T-002"]["observed"] == host_observations().HostObserver().observe(
        "os_release", {})["value"]["ID"]
    assert {results[f"IQ-T-1{i:02d}"]["verdict"] for i in range(3)} == {"pass"}
    out = done.to_dict()
    assert out["vqual_target"] == "localhost" and unpack_evidence(out)[2] == []
    assert unpack_evidence(out)[0] == done.results
    assert out["vqual_counts"] == {"pass": 4, "fail": 1}


def test_libvirt_is_observed_and_its_oq_runs_in_process_on_the_test_driver(tmp_path: Path) -> None:
    hv = {"ansible_connection": "local", "vqual_target_kinds": ["libvirt_hypervisor"],
          "vqual_risk": "high", "vqual_libvirt_uri": "test:///default", "group_names": []}
    plan = _plan(tmp_path, [LV_TYPE, LV_CPUS, *LV_OQ], {"libvirt-test": hv})
    vars_of = _vars_of(hv)
    done = qualify_target(plan, "libvirt-test", run_module=_never, target_vars=vars_of,
                          fingerprint_image=_never)
    results = _by_id(done.results)
    assert {k: r["verdict"] for k, r in results.items()} == {
        "IQ-LV-002": "pass", "IQ-LV-005": "pass", "OQ-LV-001": "pass", "OQ-LV-002": "pass",
        "OQ-LV-003": "pass", "OQ-LV-004": "pass",
    }, {k: r["reason"] for k, r in results.items()}
    assert vars_of.calls == [1]  # rendered once for all controller-side requests
    # Each OQ step is an action record with state before and after.
    assert len(done.actions) >= 4
    assert all("before" in a and "after" in a for a in done.actions)


def test_oq_in_check_mode_changes_nothing_and_says_so(tmp_path: Path) -> None:
    hv = {"ansible_connection": "local", "vqual_target_kinds": ["libvirt_hypervisor"],
          "vqual_risk": "high", "vqual_libvirt_uri": "test:///default", "group_names": []}
    plan = _plan(tmp_path, [LV_OQ[0]], {"libvirt-test": hv})
    done = qualify_target(plan, "libvirt-test", run_module=_never, target_vars=_vars_of(hv),
                          fingerprint_image=_never, check_mode=True)
    assert [r["verdict"] for r in done.results] == ["not-executed"]


def test_variables_that_cannot_be_rendered_are_errors_of_the_controller_side_tests_only(
    tmp_path: Path,
) -> None:
    host = local_host(vqual_libvirt_uri="test:///default")
    host["vqual_target_kinds"] = ["linux_host", "libvirt_hypervisor"]
    plan = _plan(tmp_path, [PASSING, LV_TYPE], {"localhost": host})

    def broken_lookup() -> dict[str, Any]:
        # What Ansible's templar raises for a failed lookup (its error types are Ansible's).
        raise RuntimeError("lookup('file', '/nonexistent')\n  failed")

    done = qualify_target(plan, "localhost", run_module=LocalModules(),
                          target_vars=broken_lookup, fingerprint_image=_never)
    results = _by_id(done.results)
    assert results["IQ-T-001"]["verdict"] == "pass"
    assert results["IQ-LV-002"]["verdict"] == "error"
    assert results["IQ-LV-002"]["reason"].endswith(
        "cannot resolve the target's vqual_ variables: lookup('file', '/nonexistent') failed")


def test_a_failed_module_call_is_an_error_for_each_of_its_tests(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [PASSING, FAILING], {"localhost": local_host()})

    def unreachable_python(name: str, args: dict[str, Any]) -> dict[str, Any]:
        # What _execute_module returns when the target's interpreter is missing.
        return {"failed": True, "msg": "/usr/bin/python9: not found"}

    done = qualify_target(plan, "localhost", run_module=unreachable_python,
                          target_vars=_never, fingerprint_image=_never)
    assert [r["verdict"] for r in done.results] == ["error", "error"]
    assert all("vqual.qualification.host_probe failed: /usr/bin/python9: not found" in r["reason"]
               for r in done.results)


def test_a_target_without_tests_returns_empty_results(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [PASSING], {"localhost": local_host()})
    done = qualify_target(plan, "not-in-plan", run_module=_never, target_vars=_never,
                          fingerprint_image=_never)
    out = done.to_dict()
    assert unpack_evidence(out) == ([], [], [])
    assert out["vqual_target"] == "not-in-plan" and out["vqual_cross"] == {}
    assert out["vqual_counts"] == {}


def test_hosts_are_compared_once_all_have_answered(tmp_path: Path) -> None:
    hostvars = {name: local_host(vqual_cluster="c1") for name in ("h1", "h2", "h3")}
    plan = _plan(tmp_path, [PASSING, SAME_OS], hostvars)
    cross = {}
    for name in ("h1", "h2"):  # h3 left the play: no registered result
        done = qualify_target(plan, name, run_module=LocalModules(), target_vars=_never,
                              fingerprint_image=_never)
        assert [r["test_id"] for r in done.results] == ["IQ-T-001"]
        assert set(done.cross) == {"IQ-T-010"}
        cross[name] = done.cross
    results = compare_targets(plan, cross.get)
    assert sorted((r["target"], r["verdict"]) for r in results) == [("h1", "pass"), ("h2", "pass")]


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None or shutil.which("debugfs") is None,
                    reason="e2fsprogs (mkfs.ext4, debugfs) not installed")
def test_a_template_image_is_read_offline_through_the_collections_reader(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "hostname").write_text("template\n")
    (root / "var" / "lib" / "dpkg").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg" / "status").write_text(
        "Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "os-release").write_text("ID=debian\nVERSION_ID=12\n")
    image = tmp_path / "template.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image), "8M"], check=True)
    vm = {"ansible_connection": "local", "vqual_target_kinds": ["master_vm"],
          "vqual_risk": "high", "vqual_template_image": str(image), "group_names": []}
    plan = _plan(tmp_path, [TEMPLATE], {"master": vm})
    done = qualify_target(plan, "master", run_module=_never, target_vars=_vars_of(vm),
                          fingerprint_image=host_observations().fingerprint_image)
    assert [r["verdict"] for r in done.results] == ["pass"], done.results

    plan = _plan(tmp_path / "none", [TEMPLATE], {"master": dict(vm, vqual_template_image=None)})
    done = qualify_target(plan, "master", run_module=_never, target_vars=_vars_of({}),
                          fingerprint_image=_never)
    assert done.results[0]["verdict"] == "error"
    assert "set vqual_template_image" in done.results[0]["reason"]
