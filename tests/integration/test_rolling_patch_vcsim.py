"""Rolling patch on VMware's simulator: the orchestrator against private vcsim processes.

This module starts its own simulators (own lab directory, 127.0.0.171 with 4 hosts for the
full run, 127.0.0.172 with 3 hosts for the sweeps, each on a free port), so it never touches
the shared lab. The
executor is the vSphere **stand-in** (a mark on the host, no software installed); the
observer (tests/integration/rollout_observer.py) polls the simulator on its own connection.
Marked ``lab``: the simulator binary comes from the lab's build (VQUAL_LAB=1).

Every case uses its own change id and package version, so a host's marks show exactly which
run patched it; hosts a case leaves in maintenance are taken out again before the next case.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.errors import BadInputError
from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import open_signer, records_as_dicts
from vqual_lab import vcsim
from vqual_lab.component import LabContext
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.platforms.vsphere.patch import read_host_mark
from qualification.review.signed import load_trust
from qualification.rollout.change import RolloutChange, load_change
from qualification.rollout.evidence import PatchEvidence
from qualification.platforms.vsphere.patch import VsphereStandInExecutor
from qualification.rollout.gates import GateRefused
from qualification.rollout.journal import STEPS, journal_path, read_journal
from qualification.rollout.lease import LeaseManager, LeaseRefused
from qualification.rollout.orchestrator import FaultInjector, Orchestrator, PatchOutcome
from qualification.rollout.requalify import PlatformRequalifier
from tests.conftest import run_vqual
from tests.integration.rollout_observer import PlatformObserver, final_placement

pytestmark = pytest.mark.lab

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
SIM4 = dataclasses.replace(vcsim.DEFAULT_VCENTER, key="rp4", inventory_host="rp4-vc",
                           address="127.0.0.171", port=28741, cluster_hosts=4, vms=4)
SIM3 = dataclasses.replace(vcsim.DEFAULT_VCENTER, key="rp3", inventory_host="rp3-vc",
                           address="127.0.0.172", port=28742, cluster_hosts=3, vms=4,
                           hardware={"*": vcsim.DEFAULT_VCENTER.hardware["*"]})
CLUSTER = "DC0_C0"
MUTATING = frozenset({
    "create_vm", "delete_vm", "power_on", "power_off", "snapshot_create", "snapshot_revert",
    "snapshot_delete", "clone_vm", "migrate_vm", "set_placement", "enter_maintenance",
    "exit_maintenance",
})


class CallLog:
    """Mutating calls made through counting wrappers (platform and executor)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def mutating(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.calls if c[0] in MUTATING or c[0].startswith("executor.apply")]


class CountingPlatform:
    """Wraps the real platform object and logs every call by name (it does not replace it)."""

    def __init__(self, wrapped: HypervisorPlatform, log: CallLog) -> None:
        self.wrapped = wrapped
        self.platform = wrapped.platform
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.calls.append((name, args))
            return attr(*args, **kwargs)

        return call


class CountingExecutor(VsphereStandInExecutor):
    def __init__(self, factory: Callable[[], HypervisorPlatform], log: CallLog) -> None:
        super().__init__(factory, poll_s=0.05)
        self._log = log

    def apply(self, host: str, change: RolloutChange) -> dict[str, Any]:
        self._log.calls.append(("executor.apply", (host,)))
        return super().apply(host, change)


@dataclasses.dataclass
class Sim:
    ctx: LabContext
    inst: vcsim.VcsimInstance
    inventory: dict[str, Any]

    def endpoint(self) -> Endpoint:
        user, pwd = vcsim.read_credentials(self.ctx, self.inst)
        return Endpoint(self.inst.address, user, pwd, port=self.inst.port, validate_certs=False,
                        datacenter="DC0", cluster=CLUSTER)

    def connect(self) -> VspherePlatform:
        return VspherePlatform(self.endpoint())

    def factory(self, log: CallLog | None = None) -> Callable[[], HypervisorPlatform]:
        def make() -> HypervisorPlatform:
            platform = self.connect()
            return CountingPlatform(platform, log) if log is not None else platform

        return make

    def hosts(self) -> list[str]:
        with self.connect() as p:
            return [h.name for h in p.hosts()]

    def reset(self) -> None:
        """Every host out of maintenance, every VM but the canary powered on."""
        with self.connect() as p:
            for h in p.hosts():
                if h.in_maintenance:
                    p.exit_maintenance(h.name)
            for vm in p.vms():
                if vm.name != CANARY and vm.power_state != "running" and not _template(p, vm.name):
                    p.power_on(vm.name)


CANARY = "DC0_C0_RP0_VM2"


def _template(p: VspherePlatform, vm: str) -> bool:
    return bool(p.vm_details(vm).get("template"))


def _free_port(address: str) -> int:
    # Two sessions may run this module at once: each takes a port nobody listens on.
    import socket

    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def _start(tmp: Path, inst: vcsim.VcsimInstance) -> Iterator[Sim]:
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    inst = dataclasses.replace(inst, port=_free_port(inst.address))
    if LAB_BIN.is_dir():  # the lab's build: a cache hit instead of a build
        shutil.copytree(LAB_BIN, tmp / "vcsim" / "bin")
    ctx = LabContext(lab_dir=tmp, run_dir=tmp / "run", repo_root=None, log=lambda _m: None)
    component = vcsim.VcsimComponent((inst,))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        sim = Sim(ctx, inst, {"all": {"children": component.inventory(ctx)["groups"]}})
        with sim.connect() as p:
            # The canary must be powered off: it visits hosts in maintenance (cold migration).
            if p.vm(CANARY).power_state == "running":
                p.power_off(CANARY)
        yield sim
    finally:
        component.down(ctx)


@pytest.fixture(scope="module")
def lab() -> None:
    """Overrides the session's shared lab (marked tests get a fixture named ``lab``): this
    module runs its own simulators and must not bring the shared lab up."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")


@pytest.fixture(scope="module")
def sim4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    yield from _start(tmp_path_factory.mktemp("rp4"), SIM4)


@pytest.fixture(scope="module")
def sim3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    yield from _start(tmp_path_factory.mktemp("rp3"), SIM3)


@pytest.fixture()
def state(executor_state: Path, tmp_path: Path) -> Path:
    """A fresh state directory (leases, journals) with the session's executor key."""
    target = tmp_path / "state"
    shutil.copytree(executor_state, target)
    return target


_SERIAL = iter(range(100, 100_000))  # 1 is the full run's


def write_change(tmp: Path, *, serial: int | None = None, exclude: list[dict[str, str]] | None = None,
                 window: tuple[str, str] = ("2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
                 canary: bool = True) -> Path:
    n = serial if serial is not None else next(_SERIAL)
    doc: dict[str, Any] = {
        "apiVersion": "vqual.change/v1",
        "change_id": f"CHG{7100000 + n:07d}",
        "title": f"stand-in patch {n}",
        "risk": "high",
        "cluster": CLUSTER,
        "target": {"packages": {"esx-standin-patch": f"1.0.{n}"}},
        "window": {"start": window[0], "end": window[1]},
        "max_parallel_migrations": 2,
        "migration_timeout_s": 60,
        "step_timeout_s": 30,
        "exclude_hosts": exclude or [],
    }
    if canary:
        doc["requalify"] = {"spec": "../../specs/vsphere-cluster.yaml", "canary_vm": CANARY}
    else:  # risk high: without a canary the change must waive it, or it is refused
        doc["canary_waiver"] = {"reason": "this case is not about the canary"}
    path = tmp / f"change-{n}.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    if canary:  # the spec path must exist; point at the repository's copy
        from tests.conftest import COLLECTION, REPO

        text = text.replace("../../specs/vsphere-cluster.yaml",
                            str(COLLECTION / "specs" / "vsphere-cluster.yaml"))
    path.write_text(text)
    return path


def orchestrator(sim: Sim, change: RolloutChange, state: Path, log: CallLog, *,
                 fault: FaultInjector | None = None, evidence: bool = True) -> Orchestrator:
    factory = sim.factory(log)
    ev = None
    if evidence:
        signer = open_signer(state / "keys" / "executor.pem")
        ev = PatchEvidence(state / "evidence", signer, "ci-pipeline", state_dir=state)
    return Orchestrator(factory, CountingExecutor(factory, log), PlatformRequalifier(), change,
                        state, ev, fault, lease_ttl_s=30)


def marks(sim: Sim, change_id: str) -> dict[str, int]:
    with sim.connect() as p:
        return {h: sum(1 for e in read_host_mark(p, h) if e.split()[0] == change_id)
                for h in [x.name for x in p.hosts()]}


def records(bundle: Path) -> list[dict[str, Any]]:
    return records_as_dicts(bundle)


def verified(bundle: Path, state: Path) -> str:
    return verify_bundle(bundle, load_trust(state)).status


def in_maintenance(sim: Sim) -> set[str]:
    with sim.connect() as p:
        return {h.name for h in p.hosts() if h.in_maintenance}


# -- the full run on 4 hosts ------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(sim4: Sim, executor_state: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("full")
    state = tmp / "state"
    shutil.copytree(executor_state, state)
    change = load_change(write_change(tmp, serial=1))
    with sim4.connect() as p:
        vms_before = {v.name for v in p.vms()}
    log = CallLog()
    with PlatformObserver(sim4.factory(), interval_s=0.1,
                          ignore_vm=lambda n: n == CANARY) as observer:
        outcome = orchestrator(sim4, change, state, log).run()
    with sim4.connect() as p:
        vms_after = {v.name for v in p.vms()}
    return {"change": change, "state": state, "outcome": outcome, "log": log,
            "observer": observer, "before": vms_before, "after": vms_after, "tmp": tmp}


def test_full_run_completes_and_every_host_shows_exactly_one_patch(
        full_run: dict[str, Any], sim4: Sim) -> None:
    outcome: PatchOutcome = full_run["outcome"]
    assert outcome.status == "done", outcome.to_json()
    assert (outcome.verdict, outcome.exit_code) == ("pass", 0), outcome.to_json()
    assert sorted(outcome.committed) == sorted(sim4.hosts())
    assert set(marks(sim4, full_run["change"].change_id).values()) == {1}
    assert full_run["before"] == full_run["after"]
    assert not in_maintenance(sim4)
    final = final_placement(full_run["observer"].snapshots)
    assert final and set(final.values()) <= set(outcome.committed), "a VM is on an unpatched host"


def test_full_run_bundle_verifies_and_records_mode_patch(full_run: dict[str, Any]) -> None:
    outcome: PatchOutcome = full_run["outcome"]
    assert outcome.bundle is not None
    assert verified(outcome.bundle, full_run["state"]) == "valid"
    recs = records(outcome.bundle)
    start = recs[0]["data"]
    assert start["mode"] == "patch"
    assert start["patch"]["change"]["digest"] == full_run["change"].digest
    assert start["patch"]["plan"]["digest"] == outcome.plan_digest
    assert start["patch"]["executor"] == {"name": "vsphere-standin", "stand_in": True}
    assert (outcome.bundle / "data" / "change.yaml").read_bytes() == Path(
        full_run["change"].path).read_bytes()
    results = [r["data"] for r in recs if r["kind"] == "check.result"]
    assert results and all(r["verdict"] == "pass" for r in results)
    assert {r["test_id"] for r in results} == {"RP-IQ-01", "RP-IQ-02", "RP-OQ-01", "RP-IQ-03"}


def test_observer_saw_no_safety_violation(full_run: dict[str, Any]) -> None:
    observer: PlatformObserver = full_run["observer"]
    assert len([s for s in observer.snapshots if s.error is None]) > 10
    assert observer.violations() == []


def test_order_per_host_from_the_evidence(full_run: dict[str, Any], sim4: Sim) -> None:
    recs = records(full_run["outcome"].bundle)
    for host in sim4.hosts():
        seq = []
        for r in recs:
            d = r["data"]
            if r["kind"] == "action" and d["target"] == host:
                seq.append(d["name"].removeprefix("patch."))
            elif (r["kind"] == "check.result" and d["target"] == host
                  and d["test_id"] == "RP-IQ-01" and d["verdict"] == "pass"):
                seq.append("requalification passed")
        wanted = ["verify_empty", "enter_maintenance", "patch", "reboot",
                  "requalification passed", "requalify", "leave_maintenance"]
        assert [s for s in seq if s in wanted] == wanted, (host, seq)


def test_rerun_after_success_makes_zero_mutating_calls(full_run: dict[str, Any], sim4: Sim
                                                       ) -> None:
    log = CallLog()
    outcome = orchestrator(sim4, full_run["change"], full_run["state"], log).run()
    assert outcome.status == "done" and outcome.committed == []
    assert log.mutating == []
    assert log.calls, "the wrapper saw the reads"
    assert set(marks(sim4, full_run["change"].change_id).values()) == {1}


def test_second_concurrent_run_is_refused_with_zero_mutating_calls(
        full_run: dict[str, Any], sim4: Sim, state: Path) -> None:
    holder = LeaseManager(state, CLUSTER)
    holder.acquire("20260101T000000Z-aaaaaa", "CHG0000001")  # live: this process holds it
    log = CallLog()
    change = load_change(write_change(full_run["tmp"]))
    with pytest.raises(LeaseRefused, match="leased to run 20260101T000000Z-aaaaaa"):
        orchestrator(sim4, change, state, log).run()
    assert log.calls == []
    holder.release()


def test_failed_preflight_makes_zero_mutating_calls(full_run: dict[str, Any], sim4: Sim,
                                                    state: Path) -> None:
    log = CallLog()
    outside = write_change(full_run["tmp"], window=("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"))
    with pytest.raises(GateRefused, match="outside the change window"):
        orchestrator(sim4, load_change(outside), state, log).run()
    assert log.mutating == []
    # A host already in maintenance that the change does not exclude: refused, nothing moved.
    host = sim4.hosts()[-1]
    with sim4.connect() as p:
        p.enter_maintenance(host)
    try:
        log = CallLog()
        change = load_change(write_change(full_run["tmp"]))
        with pytest.raises(GateRefused, match="maintenance"):
            orchestrator(sim4, change, state, log).run()
        assert log.mutating == []
        assert marks(sim4, change.change_id) == dict.fromkeys(sim4.hosts(), 0)
        # A bound digest that is not the live plan's: refused before any change.
        log = CallLog()
        with pytest.raises(GateRefused, match="bind"):
            orchestrator(sim4, load_change(write_change(
                full_run["tmp"], exclude=[{"host": host, "reason": "hardware repair"}])),
                state, log).run(bind="0" * 64)
        assert log.mutating == []
        assert not (state / "leases").exists() or not any((state / "leases").glob("*.json"))
    finally:
        sim4.reset()


def test_excluded_host_stays_in_maintenance(full_run: dict[str, Any], sim4: Sim, state: Path
                                            ) -> None:
    host = sim4.hosts()[1]
    with sim4.connect() as p:
        for vm in p.vms():  # nothing may run on a host in maintenance
            if vm.host == host and vm.power_state == "running":
                other = next(h for h in sim4.hosts() if h != host)
                p.migrate_vm(vm.name, other)
        p.enter_maintenance(host)
    try:
        change = load_change(write_change(full_run["tmp"], exclude=[
            {"host": host, "reason": "hardware repair"}]))
        outcome = orchestrator(sim4, change, state, CallLog()).run()
        assert outcome.status == "done", outcome.to_json()
        assert host not in outcome.committed
        assert in_maintenance(sim4) == {host}
        counts = marks(sim4, change.change_id)
        assert counts[host] == 0 and all(v == 1 for h, v in counts.items() if h != host)
        assert outcome.bundle is not None
        skipped = [r["data"] for r in records(outcome.bundle) if r["kind"] == "host.skipped"]
        assert any(s["target"] == host and "hardware repair" in s["reason"] for s in skipped)
    finally:
        sim4.reset()


def test_vqual_patch_plan_and_bind_through_the_cli(full_run: dict[str, Any], sim4: Sim,
                                                   state: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(json.loads(json.dumps(sim4.inventory))))
    change = write_change(full_run["tmp"])
    planned = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--plan", "--json",
                        state_dir=state)
    assert planned.returncode == 0, planned.stderr
    digest = json.loads(planned.stdout)["digest"]
    wrong = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--bind", "f" * 64,
                      "--evidence-dir", str(tmp_path / "ev"), state_dir=state)
    assert wrong.returncode == 2, wrong.stderr
    assert "bind" in wrong.stderr
    done = run_vqual("patch", "-i", str(inventory), "--change", str(change), "--bind", digest,
                     "--requalify", "platform", "--evidence-dir", str(tmp_path / "ev"), "--json",
                     state_dir=state)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "done" and out["plan_digest"] == digest
    assert "enter_maintenance" in done.stderr  # progress lines per host and step
    verify = run_vqual("verify", out["bundle"], state_dir=state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The rendered credentials reach neither the output, the bundle, nor the state directory.
    password = vcsim.read_credentials(sim4.ctx, sim4.inst)[1]
    assert password not in planned.stdout + planned.stderr + done.stdout + done.stderr
    for root in (tmp_path / "ev", state / "journals", state / "leases"):
        for f in root.rglob("*"):
            if f.is_file():
                assert password.encode() not in f.read_bytes(), f


# -- sweeps on 3 hosts --------------------------------------------------------------------------


def _pairs() -> list[tuple[int, str]]:
    return [(h, s) for h in range(3) for s in STEPS]


# A representative subset runs in CI; the whole sweep is marked slow.
_FAULT_CI = {(0, "evacuate"), (1, "enter_maintenance"), (1, "requalify"),
             (2, "leave_maintenance")}


@pytest.mark.parametrize(
    ("host_index", "step"),
    [pytest.param(h, s, marks=() if (h, s) in _FAULT_CI else pytest.mark.slow, id=f"h{h}-{s}")
     for h, s in _pairs()],
)
def test_fault_at_host_and_step_halts_in_a_safe_state(
        sim3: Sim, state: Path, tmp_path: Path, host_index: int, step: str) -> None:
    sim3.reset()
    change = load_change(write_change(tmp_path))
    with sim3.connect() as p:
        order = [hp.host for hp in Orchestrator(
            sim3.factory(), VsphereStandInExecutor(sim3.factory()), PlatformRequalifier(),
            change, state, None).plan().order]
    host = order[host_index]
    outcome = orchestrator(sim3, change, state, CallLog(),
                           fault=FaultInjector(fail_at=(host, step))).run()
    try:
        assert outcome.status == "halted" and outcome.exit_code == 1
        assert outcome.deviation is not None and outcome.deviation["step"] == step
        assert outcome.bundle is not None and verified(outcome.bundle, state) == "valid"
        raised = [r["data"] for r in records(outcome.bundle) if r["kind"] == "deviation.raised"]
        assert len(raised) == 1
        assert raised[0]["target"] == host and raised[0]["step"] == step
        assert raised[0]["run_id"] == outcome.run_id and "injected" in raised[0]["reason"]
        counts = marks(sim3, change.change_id)
        for later in order[host_index + 1:]:
            assert counts[later] == 0, f"{later} after the failing host was touched"
        for earlier in order[:host_index]:
            assert counts[earlier] == 1
        maint = in_maintenance(sim3)
        index = STEPS.index(step)
        if index <= STEPS.index("enter_maintenance"):
            assert maint == set()  # before maintenance: nothing left out of service
        elif index <= STEPS.index("leave_maintenance"):
            assert maint == {host}  # after it: the host stays in maintenance, empty
            with sim3.connect() as p:
                assert not [v.name for v in p.vms() if v.host == host and v.power_state == "running"]
        else:
            assert maint == set()
        assert counts[host] == (1 if index > STEPS.index("patch") else 0)
        assert not any((state / "leases").glob("*.json")), "the lease was released"
    finally:
        sim3.reset()


def _crash_child(sim: Sim, change_path: Path, state: Path, line: int, run_id: str) -> None:
    change = load_change(change_path)
    orch = orchestrator(sim, change, state, CallLog(), fault=FaultInjector(crash_after_line=line))
    orch.run(run_id=run_id)
    os._exit(0)  # finished without reaching the line


# Journal lines of an uninterrupted 3-host run: run.begin, 3 x (11 begin + 11 done + committed),
# homogeneity begin/done, run.done.
_LINES = 1 + 3 * (2 * len(STEPS) + 1) + 2 + 1
# run.begin; h0 evacuate begun; h0 patch begun; h1 leave_maintenance begun; the last line.
_CRASH_CI = {0, 5, 11, 40, _LINES - 1}


@pytest.mark.parametrize(
    "line",
    [pytest.param(n, marks=() if n in _CRASH_CI else pytest.mark.slow, id=f"line{n}")
     for n in range(_LINES)],
)
def test_crash_at_every_journal_boundary_then_resume(
        sim3: Sim, state: Path, tmp_path: Path, line: int) -> None:
    sim3.reset()
    change_path = write_change(tmp_path)
    change = load_change(change_path)
    with sim3.connect() as p:
        vms_before = {v.name: v.power_state for v in p.vms()}
    run_id = f"20260101T000000Z-{line:06x}"
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_crash_child, args=(sim3, change_path, state, line, run_id))
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -9, f"the run did not crash at line {line} ({child.exitcode})"
    events = read_journal(journal_path(state, run_id))
    assert len(events) == line + 1
    if events[-1]["event"] == "run.done":
        # Crashed after the last line: nothing is left to resume.
        with pytest.raises(BadInputError, match="nothing to resume"):
            orchestrator(sim3, change, state, CallLog()).resume(run_id)
    else:
        outcome = orchestrator(sim3, change, state, CallLog()).resume(run_id)
        assert outcome.status == "done", outcome.to_json()
        assert outcome.resumed_from == run_id
        assert outcome.bundle is not None and verified(outcome.bundle, state) == "valid"
        start = records(outcome.bundle)[0]["data"]
        assert start["patch"]["resumed_from"] == run_id
    assert set(marks(sim3, change.change_id).values()) == {1}, "each host patched exactly once"
    assert in_maintenance(sim3) == set()
    with sim3.connect() as p:
        assert {v.name: v.power_state for v in p.vms()} == vms_before
    crashed = state / "evidence" / change.change_id / run_id
    assert verified(crashed, state) in ("incomplete", "valid")


def test_resume_refuses_a_host_in_maintenance_the_journal_cannot_explain(
        sim3: Sim, state: Path, tmp_path: Path) -> None:
    sim3.reset()
    change_path = write_change(tmp_path)
    change = load_change(change_path)
    run_id = "20260101T000000Z-0000ff"
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_crash_child, args=(sim3, change_path, state, 3, run_id))
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -9
    order = sim3.hosts()
    stray = order[-1]
    with sim3.connect() as p:
        for vm in p.vms():
            if vm.host == stray and vm.power_state == "running":
                p.migrate_vm(vm.name, order[0])
        p.enter_maintenance(stray)
    try:
        log = CallLog()
        with pytest.raises(GateRefused, match=f"maintenance.*{stray}"):
            orchestrator(sim3, change, state, log).resume(run_id)
        assert log.mutating == []
    finally:
        sim3.reset()


def test_playbook_is_a_thin_entry_to_vqual_patch(full_run: dict[str, Any], sim4: Sim, state: Path,
                                                 tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import COLLECTION, REPO, VENV_BIN, vqual_env

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(json.loads(json.dumps(sim4.inventory))))
    change = load_change(write_change(full_run["tmp"]))
    done = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory),
         str(COLLECTION / "playbooks" / "rolling_patch.yml"),
         "-e", f"vqual_change_file={change.path}", "-e", f"vqual_evidence_dir={tmp_path / 'ev'}",
         "-e", f"vqual_state_dir={state}", "-e", f"vqual_command={VENV_BIN / 'vqual'}",
         "-e", "vqual_requalify=platform"],
        cwd=REPO, env=vqual_env(state), capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "changed=1" in done.stdout
    assert set(marks(sim4, change.change_id).values()) == {1}


def test_requalification_through_the_qualify_path(full_run: dict[str, Any], sim4: Sim,
                                                  state: Path, tmp_path: Path) -> None:
    """`vqual patch` with the change's requalify.spec: a qualify run per host (the vCenter's
    inventory host, two IQ tests), referenced from the patch bundle by its seal."""
    inventory = json.loads(json.dumps(sim4.inventory))
    for group in inventory["all"]["children"].values():
        group["vars"] = {"vqual_risk": "high",
                         "vqual_expected": {"esxi_version": "6.5.0", "esxi_build": "5969303"}}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    path = write_change(full_run["tmp"])
    doc = yaml.safe_load(path.read_text())
    doc["requalify"]["tests"] = ["IQ-VS-003", "IQ-VS-004"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = run_vqual("patch", "-i", str(inv), "--change", str(path), "--json",
                     "--evidence-dir", str(tmp_path / "ev"), state_dir=state, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    recs = records(Path(out["bundle"]))
    refs = [r["data"] for r in recs if r["kind"] == "action"
            and r["data"]["name"] == "requalify.qualify_run"]
    assert len(refs) == len(sim4.hosts())
    for ref in refs:
        after = ref["after"]
        assert after["verdict"] == "pass" and after["verification"] == "valid"
        qualify_bundle = tmp_path / "ev" / after["bundle"]
        assert verified(qualify_bundle, state) == "valid"
        end = (qualify_bundle / "records.jsonl").read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        import hashlib

        assert hashlib.sha256(end).hexdigest() == after["seal"]


def test_cli_halts_with_exit_1_then_resume_after_the_fix_finishes(
        full_run: dict[str, Any], sim4: Sim, state: Path, tmp_path: Path) -> None:
    """A canary that does not exist fails the first host's requalification: exit 1, the host
    stays in maintenance; once the canary exists, --resume continues at requalify."""
    from qualification.platforms.base import VmConfig

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(json.loads(json.dumps(sim4.inventory))))
    path = write_change(full_run["tmp"])
    doc = yaml.safe_load(path.read_text())
    doc["requalify"]["canary_vm"] = "rp-canary"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    change = load_change(path)
    args = ["patch", "-i", str(inventory), "--change", str(path), "--requalify", "platform",
            "--evidence-dir", str(tmp_path / "ev"), "--json"]
    try:
        halted = run_vqual(*args, state_dir=state)
        assert halted.returncode == 1, halted.stderr[-2000:]
        out = json.loads(halted.stdout)
        assert out["status"] == "halted" and out["deviation"]["step"] == "requalify"
        host = out["deviation"]["target"]
        assert in_maintenance(sim4) == {host}
        with sim4.connect() as p:
            p.create_vm(VmConfig(name="rp-canary"))  # powered off
        resumed = run_vqual(*args, "--resume", out["run_id"], state_dir=state)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        again = json.loads(resumed.stdout)
        assert again["status"] == "done" and again["resumed_from"] == out["run_id"]
        assert "requalify" in resumed.stderr
        assert set(marks(sim4, change.change_id).values()) == {1}
        assert not in_maintenance(sim4)
    finally:
        with sim4.connect() as p:
            if p.vm_exists("rp-canary"):
                if p.vm("rp-canary").power_state != "stopped":
                    p.power_off("rp-canary")
                p.delete_vm("rp-canary", delete_storage=True)
        sim4.reset()


def test_stop_approved_vms_are_stopped_and_started_again(sim3: Sim, state: Path, tmp_path: Path
                                                         ) -> None:
    """With no room anywhere (headroom 0.9999), the running VMs can only be stopped: the
    change approves that for each; each is off while its host is patched and runs again."""
    sim3.reset()
    with sim3.connect() as p:
        running = sorted(v.name for v in p.vms() if v.power_state == "running")
    path = write_change(tmp_path, canary=False)
    doc = yaml.safe_load(path.read_text())
    doc["headroom"] = 0.9999
    doc["stop_approved"] = [{"vm": vm, "max_downtime_s": 600} for vm in running]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    change = load_change(path)
    with PlatformObserver(sim3.factory(), interval_s=0.1) as observer:
        outcome = orchestrator(sim3, change, state, CallLog()).run()
    try:
        assert outcome.status == "done", outcome.to_json()
        # The waived canary: RP-OQ-01 not-executed on each host, so the run exits 3, not 0.
        assert (outcome.verdict, outcome.exit_code) == ("not-executed", 3), outcome.to_json()
        assert observer.violations() == []
        with sim3.connect() as p:
            assert sorted(v.name for v in p.vms() if v.power_state == "running") == running
        assert set(marks(sim3, change.change_id).values()) == {1}
        assert outcome.bundle is not None
        actions = [r["data"] for r in records(outcome.bundle) if r["kind"] == "action"]
        restarted = {vm: d for a in actions if a["name"] == "patch.health_check"
                     for vm, d in (a["detail"] or {}).get("restarted", {}).items()}
        assert sorted(restarted) == running
        assert all(d["power_state"] == "running" and 0 < d["downtime_s"] < 600
                   for d in restarted.values())
        stopped_seen = {vm for s in observer.snapshots if s.error is None
                        for vm, v in s.vms.items() if vm in running and v.power_state == "stopped"}
        assert stopped_seen == set(running)
    finally:
        sim3.reset()
