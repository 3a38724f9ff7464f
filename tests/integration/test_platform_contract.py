"""The platform contract, proved by a fourth platform that lives only in ``tests/``.

``tests/platform_contract/vqual_statefulhv`` is a platform plug-in registered through its own
``*.dist-info`` (entry point group ``vqual.platforms``) in a directory these tests put on
``PYTHONPATH``; its real endpoint is the stateful hypervisor service
``tests/platform_contract/stateful_hv_service.py``, started here as a process and stopped by
PID. The real ``vqual qualify`` runs its spec (ansible-runner, the collection's qualify role,
signed evidence), ``vqual verify`` accepts the bundle, the verdicts are compared with the
service's state read back over its API, and nothing under the product's package or the
collection's plugins names the platform. No lab is used.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification import checks
from qualification.checks import registry as check_registry
from qualification.errors import BadInputError, NotSupported
from qualification.platforms import registry
from qualification.platforms.base import HypervisorPlatform
from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual, vqual_env

SITE = REPO / "tests" / "platform_contract"  # the directory on PYTHONPATH
SERVICE = SITE / "stateful_hv_service.py"
SPEC = SITE / "statefulhv-spec.yaml"
INVENTORY = SITE / "inventory.yml"
STATE = json.loads((SITE / "service_state.json").read_text())
NAME = "statefulhv"
#: The service's bearer token: a secret that must appear in no bundle, log or report.
TOKEN = "shv-token-" + secrets.token_hex(12)
#: How long the service may take to write its ready file. Measured: 0.06-0.14 s for ten
#: starts on the 2-core machine at load 4.4; the bound is about 100 times the slowest.
READY_WITHIN_S = 15.0


@dataclass
class Service:
    url: str
    pid: int

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path,
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def delete(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method="DELETE",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def vms(self) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in self.get("/vms")}

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.get("/hosts")}


def _start_service(workdir: Path, state: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Service]:
    workdir.mkdir(parents=True, exist_ok=True)
    state_file, ready = workdir / "state.json", workdir / "ready"
    state_file.write_text(json.dumps(state))
    proc = subprocess.Popen([sys.executable, str(SERVICE), str(state_file), str(ready), TOKEN],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + READY_WITHIN_S
    while not ready.exists():
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the service wrote no ready file within {READY_WITHIN_S} s")
        try:  # waiting on the process doubles as the poll interval and sees an early exit
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the service exited with {proc.returncode}: {proc.stderr.read()!r}"
                    if proc.stderr else "the service exited")
    return proc, Service(ready.read_text(), proc.pid)


def _stop_service(proc: subprocess.Popen[bytes], service: Service) -> None:
    os.kill(service.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    if proc.stderr:
        proc.stderr.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    proc, svc = _start_service(tmp_path_factory.mktemp("service"), STATE)
    yield svc
    _stop_service(proc, svc)


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plug-in's directory on ``sys.path`` in this process, the registry rediscovered."""
    monkeypatch.syspath_prepend(str(SITE))
    registry.clear_cache()
    registry.plugins()  # as the spec loader does: the plug-ins' check types join the library
    yield
    monkeypatch.undo()
    registry.clear_cache()
    # The check library has no unregistering; the plug-in's check types must not outlive it.
    for name in [n for n in checks.known_check_types() if n.startswith(f"{NAME}_")]:
        check_registry._REGISTRY.pop(name, None)
    for module in [m for m in sys.modules if m.split(".")[0] == "vqual_statefulhv"]:
        del sys.modules[module]


def _records(bundle: Path) -> list[dict[str, Any]]:
    out = []
    for line in (bundle / "records.jsonl").read_text().splitlines():
        out.append(json.loads(base64.b64decode(json.loads(line)["payload"])))
    return out


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    bundle: Path
    records: list[dict[str, Any]]
    texts: list[str]  # everything the run printed and wrote, to search for the token

    def results(self) -> dict[str, dict[str, Any]]:
        return {r["data"]["test_id"]: r["data"]
                for r in self.records if r["kind"] == "check.result"}

    def actions(self) -> list[dict[str, Any]]:
        return [r["data"] for r in self.records if r["kind"] == "action"]


def _vqual(*args: str, state: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``vqual`` with the plug-in's directory on ``PYTHONPATH`` (and ``env``)."""
    return subprocess.run([str(VENV_BIN / "vqual"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False,
                          env={**vqual_env(state), "PYTHONPATH": str(SITE), **env})


def _qualify(state: Path, workdir: Path, inventory: Path, run_id: str, *options: str,
             **env: str) -> Run:
    evidence, log = workdir / "evidence", workdir / "ansible.log"
    done = _vqual("qualify", "-i", str(inventory), "-s", str(SPEC), "-c", "CHG0000012",
                  "--evidence-dir", str(evidence), "--run-id", run_id, "--json", *options,
                  state=state, env={"ANSIBLE_LOG_PATH": str(log), **env})
    assert done.stdout.startswith("{"), done.stdout + done.stderr
    summary = json.loads(done.stdout)
    bundle = Path(summary["bundle"])
    records = _records(bundle)
    texts = [done.stdout, done.stderr, log.read_text()]
    texts += [f.read_bytes().decode("utf-8", "replace") for f in bundle.rglob("*") if f.is_file()]
    texts += [json.dumps(r) for r in records]
    return Run(done, summary, bundle, records, texts)


@pytest.fixture(scope="module")
def qualified(service: Service, executor_state: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run of the committed spec and inventory (URL and token from the environment)."""
    return _qualify(executor_state, tmp_path_factory.mktemp("run"), INVENTORY,
                    "20261206T120000Z-c0ffee", STATEFULHV_URL=service.url,
                    STATEFULHV_TOKEN=TOKEN)


# -- registered from the tests alone ---------------------------------------------------------------


def test_nothing_in_the_product_or_the_plugins_names_the_fourth_platform() -> None:
    roots = [REPO / "qualification", COLLECTION / "plugins"]
    pattern = re.compile(r"statefulhv|stateful_hv|platform_contract", re.IGNORECASE)
    found = [
        str(path.relative_to(REPO))
        for root in roots for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
        and pattern.search(path.read_bytes().decode("utf-8", "replace"))
    ]
    assert found == []
    assert sum(1 for root in roots for p in root.rglob("*.py")) > 50, "the search saw the code"
    # Nor is it registered by the product: only the tests' dist-info names it.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert NAME not in pyproject


def test_the_plugin_implements_every_hook_and_brings_its_check_types(on_path: None) -> None:
    plugin = registry.get(NAME)
    hooks = {name for name, value in vars(registry.PlatformPlugin).items()
             if callable(value) and not name.startswith("_") and name != "is_target"}
    assert hooks >= {"endpoint", "connect", "answer", "run_probe", "connect_module",
                     "patch_setup", "cleanup", "cleanup_state", "check_types"}
    assert sorted(hooks - set(vars(type(plugin)))) == [], "a hook left to the default"
    assert registry.for_probe(NAME) is plugin
    assert "statefulhv_host" in registry.target_kinds()
    registry.plugins()
    kinds = {"statefulhv_about", "statefulhv_host", "statefulhv_vm", "statefulhv_snapshots",
             "statefulhv_oq"}
    assert kinds <= checks.known_check_types()
    assert {checks.get_check(k).request({"scenario": "maintenance_round_trip", "vm": "x"}).probe
            for k in kinds} == {NAME}


def test_the_hooks_on_the_real_service(on_path: None, service: Service, tmp_path: Path) -> None:
    plugin = registry.get(NAME)
    host_vars = {"vqual_statefulhv_url": service.url, "vqual_statefulhv_token": TOKEN}
    endpoint = plugin.endpoint(host_vars)
    assert plugin.endpoint_secrets(endpoint) == (TOKEN,)
    assert TOKEN not in repr(endpoint)
    with pytest.raises(BadInputError, match="vqual_statefulhv_token is required"):
        plugin.endpoint({"vqual_statefulhv_url": service.url})
    adapter = plugin.connect(endpoint, readonly=True)
    assert isinstance(adapter, HypervisorPlatform)
    assert {h.name for h in adapter.hosts()} == set(service.hosts())
    assert adapter.vm("web01").host == service.vms()["web01"]["host"]
    for unsupported in (adapter.datastores, adapter.networks, adapter.clusters, adapter.events,
                        lambda: adapter.snapshots("web01")):
        with pytest.raises(NotSupported, match="the stateful test hypervisor has no"):
            unsupported()
    # The collection's modules: hostname is the URL, password the token (masked by the module).
    params = {"hostname": service.url, "password": TOKEN}
    assert plugin.module_secrets(params) == (TOKEN,)
    module_adapter = plugin.connect_module(params, readonly=False)
    there, facts, shown = plugin.migration_state(module_adapter, "web01", "hv1")
    assert (there, facts.host, shown) == (service.vms()["web01"]["host"] == "hv1", "hv1", "hv1")
    # A rolling patch: the service has nothing to patch, said with the reason.
    inventory = {"shv-test": {**host_vars, "vqual_cluster": "shv-a"}}
    with pytest.raises(NotSupported, match="no software to patch"):
        plugin.patch_setup(inventory, "shv-a", None, tmp_path)
    assert plugin.patch_setup(inventory, "another-cluster", None, tmp_path) is None
    assert plugin.cleanup_state(tmp_path, "20261206T120000Z-000001") is None
    # Clones of a Master-VM: the hooks take the endpoint as a string, which cannot carry the
    # token safely; refused with the reason, and nothing is made.
    for refused in (lambda: plugin.create_clone(service.url, "tmpl01", "vqual-clone-1"),
                    lambda: plugin.remove_clone(service.url, "vqual-clone-1")):
        with pytest.raises(NotSupported, match="bearer token on a command line"):
            refused()
    assert "vqual-clone-1" not in service.vms()


def test_check_mode_and_the_module_form_change_nothing(on_path: None, service: Service) -> None:
    plugin = registry.get(NAME)
    host_vars = {"vqual_statefulhv_url": service.url, "vqual_statefulhv_token": TOKEN,
                 "vqual_statefulhv_oq": {"template": "tmpl01", "maintenance_host": "hv2",
                                         "destination": "hv1"}}
    oq = checks.get_check("statefulhv_oq").request({"scenario": "maintenance_round_trip"})
    before = service.vms(), service.hosts()
    answered = plugin.answer([oq.to_json()], host_vars=host_vars, run_id="r1", check_mode=True)
    assert answered[oq.key()]["not_executed"] == "check mode"
    observations, changed = plugin.run_probe(plugin.endpoint(host_vars), [oq.to_json()],
                                             run_id="r1", check_mode=True, state_dir=None)
    assert (observations[oq.key()]["not_executed"], changed) == ("check mode", False)
    assert (service.vms(), service.hosts()) == before


def test_a_round_trip_needs_its_host_in_service(on_path: None, tmp_path: Path) -> None:
    """The scenario's precondition: a maintenance host already in maintenance (someone
    else's) is left alone and the OQ test is not-executed with the reason."""
    proc, svc = _start_service(tmp_path / "service", STATE)
    try:
        svc.post("/hosts/hv2/maintenance", {"enabled": True})
        before = svc.vms(), svc.hosts()
        check = checks.get_check("statefulhv_oq")
        params = {"scenario": "maintenance_round_trip"}
        request = check.request(params)
        answered = registry.get(NAME).answer(
            [request.to_json()], run_id="r2",
            host_vars={"vqual_statefulhv_url": svc.url, "vqual_statefulhv_token": TOKEN,
                       "vqual_statefulhv_oq": {"template": "tmpl01", "maintenance_host": "hv2",
                                               "destination": "hv1"}})
        observation = checks.Observation.from_json(answered[request.key()])
        assert observation.actions == ()
        outcome = checks.evaluate(check, observation, params, {"op": "equals", "value": "pass"})
        assert outcome.verdict == "not-executed"
        assert outcome.reason == ("hv2 is not in service (in_maintenance: True): the round trip "
                                  "needs it in service")
        assert (svc.vms(), svc.hosts()) == before
    finally:
        _stop_service(proc, svc)


def test_without_its_directory_on_the_path_the_platform_is_unknown() -> None:
    """Also after the tests above had it on the path: nothing of it stays behind."""
    registry.clear_cache()
    assert NAME not in registry.names()
    assert not any(n.startswith(f"{NAME}_") for n in checks.known_check_types())
    with pytest.raises(BadInputError, match=f"unknown platform '{NAME}'"):
        registry.get(NAME)


# -- through vqual qualify -------------------------------------------------------------------------


def test_qualify_runs_the_fourth_platform_and_the_signed_bundle_verifies(
    qualified: Run, executor_state: Path
) -> None:
    summary = qualified.summary
    assert summary["verification"] == "valid", summary
    assert summary["planned"] == summary["executed"] == 8
    assert summary["counts"] == {"pass": 7, "fail": 0, "error": 0, "not-executed": 1, "waived": 0}
    # Worst verdict decides: one test the platform cannot run makes the run not-executed (3).
    assert (summary["verdict"], qualified.done.returncode) == ("not-executed", 3)
    verify = run_vqual("verify", str(qualified.bundle), state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert summary["seal"] in verify.stdout
    start = next(r for r in qualified.records if r["kind"] == "run.start")
    assert start["run_id"] == summary["run_id"]
    assert {r["data"]["target"] for r in qualified.records if r["kind"] == "check.result"} == {
        "shv-test"}


def test_iq_verdicts_are_the_service_state(qualified: Run, service: Service) -> None:
    results = qualified.results()
    about, hosts, vms = service.get("/about"), service.hosts(), service.vms()
    observed = {test_id: results[test_id]["observed"] for test_id in results}
    assert observed["IQ-SHV-001"] == about["product"]
    assert observed["IQ-SHV-002"] == about["version"]
    assert observed["IQ-SHV-003"] is hosts["hv1"]["in_maintenance"] is False
    assert observed["IQ-SHV-004"] is hosts["hv2"]["in_maintenance"] is False
    assert observed["IQ-SHV-005"] == vms["web01"]["host"] == "hv1"
    assert observed["IQ-SHV-006"] == vms["web01"]["power_state"] == "running"
    assert all(results[f"IQ-SHV-00{i}"]["verdict"] == "pass" for i in range(1, 7))
    assert results["IQ-SHV-001"]["method"] == f"GET /about {service.url}"


def test_an_unsupported_operation_is_not_executed_with_the_reason(qualified: Run) -> None:
    snapshots = qualified.results()["IQ-SHV-007"]
    assert snapshots["verdict"] == "not-executed"
    assert snapshots["reason"] == (
        "snapshots not supported: the stateful test hypervisor has no snapshots")
    assert snapshots["observed"] is None


def test_the_oq_step_changed_the_service_and_restored_it(qualified: Run, service: Service) -> None:
    oq = qualified.results()["OQ-SHV-001"]
    assert (oq["protocol"], oq["verdict"]) == ("OQ", "pass"), oq
    clone = oq["measured"]["vm"]
    assert re.fullmatch(rf"vqual-oq-{qualified.summary['run_id']}(-[0-9]+)?", clone), clone
    actions = qualified.actions()
    assert [a["name"] for a in actions] == [
        "statefulhv.clone", "statefulhv.power_on", "statefulhv.evacuate",
        "statefulhv.enter_maintenance", "statefulhv.exit_maintenance", "statefulhv.return",
        "statefulhv.power_off", "statefulhv.cleanup"]
    assert all(a["verdict"] == "pass" and a["target"] == clone for a in actions)
    by_name = {a["name"].split(".")[1]: a for a in actions}
    # Each step's before/after is the service's state read back around it.
    assert by_name["clone"]["before"]["vm"] is None
    made = by_name["clone"]["after"]["vm"]
    assert made["host"] == "hv2" and made["power_state"] == "stopped"
    assert made["uuid"] not in {v["uuid"] for v in STATE["vms"]}, "a new VM, made by the service"
    assert by_name["evacuate"]["after"]["vm"]["host"] == "hv1"
    assert by_name["enter_maintenance"]["before"]["in_maintenance"] is False
    assert by_name["enter_maintenance"]["after"]["in_maintenance"] is True
    assert by_name["exit_maintenance"]["after"]["in_maintenance"] is False
    assert by_name["return"]["after"]["vm"] == {**made, "power_state": "running"}
    assert by_name["cleanup"]["after"]["vm"] is None
    # Read back from the service: as it was before the run.
    assert service.vms() == {v["name"]: {**v} for v in STATE["vms"]}
    assert not any(h["in_maintenance"] for h in service.hosts().values())


def test_in_check_mode_the_oq_step_is_not_executed_and_nothing_changes(
    service: Service, executor_state: Path, tmp_path: Path
) -> None:
    before = service.vms(), service.hosts()
    run = _qualify(executor_state, tmp_path, INVENTORY, "20261206T120000Z-c4ec00", "--check",
                   STATEFULHV_URL=service.url, STATEFULHV_TOKEN=TOKEN)
    assert run.summary["verification"] == "valid"
    oq = run.results()["OQ-SHV-001"]
    assert (oq["verdict"], oq["reason"]) == ("not-executed", "check mode")
    assert run.actions() == []
    assert run.results()["IQ-SHV-001"]["verdict"] == "pass", "IQ reads still run"
    assert (service.vms(), service.hosts()) == before


def test_the_service_rules_decide_the_oq_and_the_iq(
    executor_state: Path, tmp_path: Path
) -> None:
    """Another service, where hv2 runs a VM and web01 is stopped: the service refuses the
    maintenance (its own message is the reason), IQ sees web01 stopped, and the run still
    leaves the service as found. The inventory here holds the URL and token literally."""
    state = {"hosts": STATE["hosts"],
             "vms": [{**v, "power_state": "stopped"} if v["name"] == "web01" else v
                     for v in STATE["vms"]]
             + [{"name": "db01", "host": "hv2", "power_state": "running", "uuid": "db01-uuid",
                 "vcpus": 2, "memory_mib": 2048}]}
    proc, svc = _start_service(tmp_path / "service", state)
    try:
        inventory = yaml.safe_load(INVENTORY.read_text())
        host = inventory["all"]["hosts"]["shv-test"]
        host.update(vqual_statefulhv_url=svc.url, vqual_statefulhv_token=TOKEN)
        literal = tmp_path / "inventory.yml"
        literal.write_text(yaml.safe_dump(inventory))
        run = _qualify(executor_state, tmp_path, literal, "20261206T120000Z-bad0aa")
        results = run.results()
        assert run.summary["verification"] == "valid"
        assert (run.summary["verdict"], run.done.returncode) == ("fail", 1)
        assert (results["IQ-SHV-006"]["verdict"], results["IQ-SHV-006"]["observed"]) == (
            "fail", "stopped")
        assert results["IQ-SHV-005"]["verdict"] == "pass"
        oq = results["OQ-SHV-001"]
        assert oq["verdict"] == "fail"
        # The service's own refusal is the reason.
        assert oq["reason"].startswith("enter_maintenance: "), oq["reason"]
        assert "POST /hosts/hv2/maintenance: HTTP 409: host hv2 still runs db01" in oq["reason"]
        steps = oq["measured"]["steps"]
        assert steps["exit_maintenance"]["verdict"] == "not-executed"
        assert steps["cleanup"]["verdict"] == "pass"
        assert svc.vms() == {v["name"]: v for v in state["vms"]}, "the clone is gone"
        assert not any(h["in_maintenance"] for h in svc.hosts().values())
        assert [t[:80] for t in run.texts if TOKEN in t] == []
        inventory_json = (run.bundle / "inventory.json").read_text()
        assert svc.url in inventory_json and "vqual_statefulhv_token" in inventory_json
    finally:
        _stop_service(proc, svc)


def test_cleanup_removes_a_killed_runs_clone(
    service: Service, executor_state: Path, tmp_path: Path
) -> None:
    """A run killed mid-scenario leaves its clone; ``vqual cleanup RUN_ID`` finds it by name
    through the plug-in's cleanup hook and removes it, and nothing else."""
    run_id = "20261206T120000Z-dead01"
    service.post("/vms/tmpl01/clone", {"name": f"vqual-oq-{run_id}-8"})
    service.post(f"/vms/vqual-oq-{run_id}-8/power", {"state": "running"})
    service.post("/vms/tmpl01/clone", {"name": "vqual-oq-20261206T120000Z-other1"})
    done = _vqual("cleanup", run_id, "-i", str(INVENTORY), "--json", state=executor_state,
                  env={"STATEFULHV_URL": service.url, "STATEFULHV_TOKEN": TOKEN})
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["removed"] == [f"vqual-oq-{run_id}-8"]
    assert [t["endpoint"] for t in result["targets"]] == [service.url]
    assert TOKEN not in done.stdout + done.stderr
    assert set(service.vms()) == {"web01", "tmpl01", "vqual-oq-20261206T120000Z-other1"}
    service.delete("/vms/vqual-oq-20261206T120000Z-other1")  # another run's: tidied here


CHANGE = """
apiVersion: vqual.change/v1
change_id: CHG0000012
title: Patch the stateful test hypervisor
risk: low
cluster: shv-a
target:
  hypervisor_version: "1.5.0"
window:
  start: "2026-01-01T00:00:00Z"
  end: "2030-01-01T00:00:00Z"
"""


def test_a_rolling_patch_is_refused_with_the_reason(
    service: Service, executor_state: Path, tmp_path: Path
) -> None:
    """``vqual patch`` asks every plug-in's ``patch_setup``: this one manages cluster shv-a
    but has nothing to patch, which is one line and exit 4, and nothing changes."""
    change = tmp_path / "change.yaml"
    change.write_text(CHANGE)
    before = service.vms(), service.hosts()
    done = _vqual("patch", "-i", str(INVENTORY), "--change", str(change), "--plan",
                  state=executor_state,
                  env={"STATEFULHV_URL": service.url, "STATEFULHV_TOKEN": TOKEN})
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        ("vqual: patch not supported: the stateful test hypervisor has no software to patch "
         "(its API offers no update)")]
    assert (service.vms(), service.hosts()) == before


PLAYBOOK = """
- name: The collection's platform modules on the fourth platform
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Move web01
      vqual.qualification.vm_migrate:
        platform: statefulhv
        hostname: "{{ lookup('env', 'STATEFULHV_URL') }}"
        password: "{{ lookup('env', 'STATEFULHV_TOKEN') }}"
        name: web01
        destination: "{{ destination }}"
      register: moved
    - name: Maintenance of hv1
      vqual.qualification.host_maintenance:
        platform: statefulhv
        hostname: "{{ lookup('env', 'STATEFULHV_URL') }}"
        password: "{{ lookup('env', 'STATEFULHV_TOKEN') }}"
        host: hv1
        state: "{{ maintenance }}"
      register: maintained
    - name: What changed
      ansible.builtin.debug:
        msg: "moved={{ moved.changed }} maintained={{ maintained.changed }}"
"""


def test_the_collections_platform_modules_drive_it(executor_state: Path, tmp_path: Path) -> None:
    """``vm_migrate`` and ``host_maintenance`` take ``platform: statefulhv`` (hooks
    ``connect_module``, ``module_secrets``, ``migration_state``) and change the service."""
    proc, svc = _start_service(tmp_path / "service", STATE)
    try:
        playbook = tmp_path / "modules.yml"
        playbook.write_text(PLAYBOOK)

        def play(destination: str, maintenance: str) -> str:
            done = subprocess.run(
                [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-v",
                 "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
                 "-e", f"destination={destination}", "-e", f"maintenance={maintenance}",
                 str(playbook)],
                env={**vqual_env(executor_state), "PYTHONPATH": str(SITE),
                     "STATEFULHV_URL": svc.url, "STATEFULHV_TOKEN": TOKEN},
                capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
            assert TOKEN not in done.stdout + done.stderr
            return done.stdout

        out = play("hv2", "present")
        assert "moved=True maintained=True" in out
        assert svc.vms()["web01"]["host"] == "hv2" and svc.hosts()["hv1"]["in_maintenance"]
        out = play("hv2", "absent")  # web01 is on hv2 already: migration_state says so
        assert "moved=False maintained=True" in out
        out = play("hv1", "absent")
        assert "moved=True maintained=False" in out
        assert svc.vms() == {v["name"]: v for v in STATE["vms"]}
        assert not any(h["in_maintenance"] for h in svc.hosts().values())
    finally:
        _stop_service(proc, svc)


def test_the_token_appears_in_no_bundle_log_or_report(qualified: Run, executor_state: Path) -> None:
    assert (qualified.bundle / "report.html").is_file()
    assert any("PLAY" in t for t in qualified.texts), "Ansible's log was read"
    verify = run_vqual("verify", str(qualified.bundle), state_dir=executor_state)
    texts = [*qualified.texts, verify.stdout, verify.stderr]
    assert [t[:80] for t in texts if TOKEN in t] == []
    snapshot = json.loads((qualified.bundle / "inventory.json").read_text())
    assert "vqual_statefulhv_token" in json.dumps(snapshot)


def test_selftest_lists_the_fourth_platform_with_its_distribution_and_still_passes(
    on_path: None,
) -> None:
    # A site's own plug-in changes what runs: the selftest names it and who brings it (VQ-24),
    # without judging it; the platforms vqual ships are still its own.
    from qualification.selftest import platforms as selftest_platforms

    (shipped, unknown) = selftest_platforms.platform_checks()
    outcome = shipped.run()
    assert outcome.ok, outcome.reason
    assert outcome.observed[NAME] == {
        "entry_point": "vqual_statefulhv.plugin:PLUGIN",
        "distribution": "vqual_statefulhv",
        "version": "0.0",
    }
    refused = unknown.run()
    assert refused.ok and NAME in refused.observed, refused
