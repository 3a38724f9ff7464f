"""Rolling patch of the lab's KVM cluster through ``vqual patch``, for real.

kvm1 and kvm2 are patched one at a time (vqual-lab-agent 1.0 -> 1.1 from the lab repository,
a real apt upgrade over SSH, then a libvirtd restart) while clone1 and clone2 run and are
live-migrated away and back. The shipped change's OQ canary, the lab's Master-VM ``master``
(stopped, at home on kvm1), is moved cold onto each patched host while it is still in
maintenance and back (RP-OQ-01), so the run ends PASS with the canary at home. The observer (tests/integration/rollout_observer.py) polls both
libvirtds on its own connections the whole time; each host's own dpkg log (read inside the
host, not over vqual's path) must show exactly one upgrade of the package per run.

Then a real SIGKILL of the ``vqual patch`` process group at step boundaries (three) and once
during evacuation with a live migration in flight, followed by ``vqual patch --resume``: the
end state is the same as an uninterrupted run's, each host upgraded once. CI keeps the
migration-in-flight case; the three step boundaries are marked ``slow``.

After every case the lab is put back: packages to the baseline (the lab's ``KvmCluster.reset``,
a downgrade, not an upgrade, in the dpkg log), maintenance markers removed, clones and the canary back
on their hosts. Run under the lab lock:
``VQUAL_LAB=1 VQUAL_LAB_KEEP=1 flock /tmp/vqual-lab.lock .venv/bin/pytest
tests/integration/test_rolling_patch_kvm.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from qualification.execution.inventory import read_hostvars
from qualification.execution.recorder import records_as_dicts
from vqual_lab import manager, repo
from vqual_lab.component import LabContext
from vqual_lab.kvm import KvmCluster
from qualification.platforms.libvirt.cluster import LibvirtCluster
from qualification.rollout.journal import journal_path, read_journal
from qualification.platforms.libvirt.endpoint import SSH_VARS
from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual, vqual_env
from tests.integration.rollout_observer import PlatformObserver, final_placement, host_sequence

pytestmark = pytest.mark.lab

CLUSTER = "lab-kvm"
HOSTS = ("kvm1", "kvm2")
HOME = {"clone1": "kvm1", "clone2": "kvm2"}  # where lab up puts the clones
CANARY, CANARY_HOME = "master", "kvm1"  # the shipped change's requalify.canary_vm; lab up
PLACEMENT = {**HOME, CANARY: CANARY_HOME}  # defines it there, stopped (lab/vqual_lab/guests.py)
ORDER = ("verify_empty", "enter_maintenance", "patch", "reboot", "requalify", "leave_maintenance")


@pytest.fixture(scope="module")
def ctx(lab: object) -> LabContext:
    return manager.context()


@pytest.fixture(scope="module")
def kvm(ctx: LabContext) -> KvmCluster:
    comp = manager.component("kvm")
    assert isinstance(comp, KvmCluster)
    assert comp.status(ctx).state == "running"
    return comp


@pytest.fixture(scope="module")
def inventory(ctx: LabContext) -> Path:
    return manager.inventory_dir(ctx) / "hosts.yml"


@pytest.fixture(scope="module")
def hostvars(inventory: Path) -> dict[str, dict[str, Any]]:
    return read_hostvars(inventory, names=SSH_VARS, patterns=("vqual_.*",))


@dataclass
class Case:
    """One rolling patch case: its own state directory, change file and evidence root."""

    state: Path
    change: Path
    evidence: Path
    hostvars: dict[str, dict[str, Any]]
    kvm: KvmCluster
    ctx: LabContext
    upgrades_before: dict[str, int]

    def cluster(self) -> LibvirtCluster:
        # The state directory holds the libvirt maintenance markers the run writes.
        return LibvirtCluster.from_hostvars(self.hostvars, CLUSTER, state_dir=self.state)

    def observer(self) -> PlatformObserver:
        return PlatformObserver(self.cluster, interval_s=0.2)

    def new_upgrades(self) -> dict[str, int]:
        now = agent_upgrades(self.kvm, self.ctx)
        return {h: now[h] - self.upgrades_before[h] for h in HOSTS}


def agent_upgrades(kvm: KvmCluster, ctx: LabContext) -> dict[str, int]:
    """Upgrade lines of the agent in each host's own /var/log/dpkg.log (read inside the host)."""
    out = {}
    for host in HOSTS:
        text = kvm.exec(ctx, host, ["cat", "/var/log/dpkg.log"]).stdout.decode()
        out[host] = sum(
            1
            for line in text.splitlines()
            if len(line.split()) >= 4
            and line.split()[2] == "upgrade"
            and line.split()[3].split(":")[0] == repo.AGENT
        )
    return out


def write_change(tmp: Path, change_id: str, *, requalify_tests: list[str] | None = None) -> Path:
    """The shipped lab change with its own id and an open window, its OQ canary kept.

    ``requalify_tests``: the spec's tests each host's qualify run is limited to (None: the
    shipped selection; the runs given ``--requalify platform`` run none of them).
    """
    doc = yaml.safe_load((COLLECTION / "specs" / "changes" / "lab-kvm-agent-1.1.yaml").read_text())
    doc["change_id"] = change_id
    doc["window"] = {"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
    shipped = doc["requalify"]
    assert shipped["canary_vm"] == CANARY and "canary_waiver" not in doc, doc
    # The copy is written elsewhere: the spec path the change gives relative to itself is
    # made absolute.
    shipped["spec"] = str(COLLECTION / "specs" / "kvm-cluster.yaml")
    if requalify_tests is not None:
        shipped["tests"] = requalify_tests
    path = tmp / f"{change_id}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def restore(case: Case) -> None:
    """The lab as the session found it: baseline packages, no markers, clones and canary at home.

    Markers go first: the canary, stopped, is moved cold (a host in maintenance would take
    it, but a clone must not go live onto one).
    """
    case.kvm.reset(case.ctx)
    with case.cluster() as cluster:
        for host in cluster.hosts():
            if host.in_maintenance:
                cluster.exit_maintenance(host.name)
        for vm, home in PLACEMENT.items():
            if cluster.where(vm) != home:
                cluster.migrate_vm(vm, home)


@pytest.fixture
def make_case(
    executor_state: Path,
    tmp_path: Path,
    hostvars: dict[str, dict[str, Any]],
    kvm: KvmCluster,
    ctx: LabContext,
) -> Iterator[Callable[..., Case]]:
    made: list[Case] = []

    def make(change_id: str, **kwargs: Any) -> Case:
        state = tmp_path / "state"
        shutil.copytree(executor_state, state)
        case = Case(
            state=state,
            change=write_change(tmp_path, change_id, **kwargs),
            evidence=tmp_path / "evidence",
            hostvars=hostvars,
            kvm=kvm,
            ctx=ctx,
            upgrades_before=agent_upgrades(kvm, ctx),
        )
        with case.cluster() as cluster:
            vms = {v.name: v for v in cluster.vms()}
            assert {n: v.host for n, v in vms.items() if n in PLACEMENT} == PLACEMENT
            assert vms[CANARY].power_state == "stopped", vms[CANARY]
        assert {kvm.package_version(ctx, h, repo.AGENT) for h in HOSTS} == {repo.BASE_VERSION}
        made.append(case)
        return case

    yield make
    for case in made:
        restore(case)


def patch_argv(case: Case, inventory: Path, *extra: str) -> list[str]:
    return [
        str(VENV_BIN / "vqual"), "patch", "-i", str(inventory), "--change", str(case.change),
        "--evidence-dir", str(case.evidence), "--json", *extra,
    ]  # fmt: skip


def check_results(bundle: Path) -> list[dict[str, Any]]:
    return [r["data"] for r in records_as_dicts(bundle) if r["kind"] == "check.result"]


def assert_rolled_out(
    case: Case,
    outcome: dict[str, Any],
    before: set[str],
    earlier: tuple[str, ...] = (),
    crashed: Path | None = None,
) -> None:
    """The end state every completed run must reach, read from the lab and the evidence.

    ``earlier``: hosts a crashed run committed before (a resumed run skips them).
    ``crashed``: that run's bundle, which holds the results of the hosts it requalified (a
    resumed run does not requalify them again).
    """
    assert outcome["status"] == "done", outcome
    # Every test ran and passed, RP-OQ-01 with the canary included: PASS, exit 0.
    assert outcome["verdict"] == "pass" and outcome["exit_code"] == 0, outcome
    assert not set(outcome["committed"]) & set(earlier)
    assert sorted([*outcome["committed"], *earlier]) == list(HOSTS)
    assert case.new_upgrades() == {"kvm1": 1, "kvm2": 1}, "each host upgraded exactly once"
    for host in HOSTS:
        assert case.kvm.package_version(case.ctx, host, repo.AGENT) == "1.1"
    with case.cluster() as cluster:
        assert not any(h.in_maintenance for h in cluster.hosts())
        vms = {v.name: v for v in cluster.vms()}
    assert set(vms) == before
    # The clones keep the SSH forward the inventory names, running and in their definition.
    with case.cluster() as cluster:
        for vm in HOME:
            address, port = case.hostvars[vm]["ansible_host"], case.hostvars[vm]["ansible_port"]
            assert ("tcp", address, port) in cluster.live_forwards(vms[vm].host, vm)
            xml = cluster.member(vms[vm].host).vm_xml(vm, inactive=True)
            assert f"hostfwd=tcp:{address}:{port}-" in xml
    # Every VM ends on a host that was patched and requalified in this run.
    assert {v.host for v in vms.values()} <= {*outcome["committed"], *earlier}
    assert all(vms[vm].power_state == "running" for vm in HOME)
    # The canary went home after each visit, still stopped (never powered on anywhere).
    assert (vms[CANARY].host, vms[CANARY].power_state) == (CANARY_HOME, "stopped")
    bundle = Path(outcome["bundle"])
    verify = run_vqual("verify", str(bundle), state_dir=case.state)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    results = check_results(bundle)
    earlier_results = check_results(crashed) if crashed is not None else []
    for host in HOSTS:
        # This run's results for the host, else (requalified before the crash) the crashed run's.
        mine = [r for r in results if r["target"] == host]
        if not mine:
            assert crashed is not None, f"no results for {host}"
            mine = [r for r in earlier_results if r["target"] == host]
        verdicts = {r["test_id"]: r["verdict"] for r in mine}
        assert verdicts and not {"fail", "error"} & set(verdicts.values()), verdicts
        # RP-OQ-01: the canary landed on the patched host (kvm2), or, while its home kvm1
        # was patched, went out to kvm2 and back in; it always ended at home.
        (oq,) = [r for r in mine if r["test_id"] == "RP-OQ-01"]
        assert oq["verdict"] == "pass", oq
        observed = oq["observed"]
        assert (observed["canary"], observed["origin"]) == (CANARY, CANARY_HOME), oq
        landed = "kvm2" if host == CANARY_HOME else host
        assert (observed["landed_on"], observed["returned_to"]) == (landed, CANARY_HOME), oq
    if outcome["resumed_from"] is None:  # a resumed run may also list tests the crashed run ran
        not_run = [r for r in results if r["verdict"] == "not-executed"]
        assert not_run == [], not_run


def test_full_rolling_patch_of_both_kvm_hosts(
    make_case: Callable[..., Case], inventory: Path
) -> None:
    case = make_case("CHG0007101", requalify_tests=["IQ-KVM-002", "IQ-KVM-005", "IQ-KVM-006"])
    with case.cluster() as cluster:
        before = {v.name for v in cluster.vms()}
    t0 = time.monotonic()
    with case.observer() as observer:
        done = subprocess.run(
            patch_argv(case, inventory),
            env=vqual_env(case.state),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    seconds = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert_rolled_out(case, outcome, before)
    # The observer's view, independent of vqual's own calls.
    assert observer.violations() == [], observer.timeline()
    good = [s for s in observer.snapshots if s.error is None]
    assert len(good) > 10
    for host in HOSTS:
        # Each host leaves service once, through maintenance, and comes back. Polls while its
        # libvirtd restarts mostly fail as a whole (error snapshots, skipped); one that
        # straddles the restart lists the host's VMs but not the host, which is seen
        # disconnected: out of service too, and only ever inside its maintenance window.
        seen = host_sequence(observer.snapshots, host)
        assert seen[0] == seen[-1] == "in-service", seen
        assert "maintenance" in seen[1:-1], seen
        assert set(seen[1:-1]) <= {"maintenance", "disconnected"}, seen
    assert set(final_placement(observer.snapshots)) == set(before)
    # Order per host from the evidence: verify-empty < maintenance < patch < reboot <
    # requalification passed < leave maintenance.
    recs = records_as_dicts(Path(outcome["bundle"]))
    for host in HOSTS:
        steps = [
            r["data"]["name"].removeprefix("patch.")
            for r in recs
            if r["kind"] == "action"
            and r["data"].get("target") == host
            and r["data"].get("verdict") == "pass"
        ]
        assert [s for s in steps if s in ORDER] == list(ORDER), steps
    assert recs[0]["data"]["mode"] == "patch"
    print(f"full rolling patch of 2 KVM hosts: {seconds:.1f} s")


def _wait_journal(
    path: Path, proc: subprocess.Popen[str], until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        events = read_journal(path) if path.exists() else []
        if until(events):
            return events
        if proc.poll() is not None:
            raise AssertionError(f"vqual patch ended ({proc.returncode}) before the kill point")
        time.sleep(0.02)
    raise AssertionError("kill point not reached within 600 s")


def _begun(host: str, step: str) -> Callable[[list[dict[str, Any]]], bool]:
    def check(events: list[dict[str, Any]]) -> bool:
        return any(
            e.get("event") == "step.begin" and e.get("host") == host and e.get("step") == step
            for e in events
        )

    return check


def crash_and_resume(
    case: Case,
    inventory: Path,
    run_id: str,
    kill_point: Callable[[subprocess.Popen[str], Path], list[dict[str, Any]]],
) -> tuple[dict[str, Any], list[dict[str, Any]], PlatformObserver]:
    with case.cluster() as cluster:
        before = {v.name for v in cluster.vms()}
    journal = journal_path(case.state, run_id)
    with case.observer() as observer:
        proc = subprocess.Popen(
            patch_argv(case, inventory, "--requalify", "platform", "--run-id", run_id),
            env=vqual_env(case.state),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: the kill takes ssh children too
        )
        try:
            events = kill_point(proc, journal)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
            with case.cluster() as cluster:
                print(
                    f"killed after {events[-1].get('host')} {events[-1].get('step')} "
                    f"{events[-1].get('event')}; jobs {cluster.tasks_in_flight()}; "
                    f"placement {[(v.name, v.host, v.power_state) for v in cluster.vms()]}"
                )
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        resumed = run_vqual(
            "patch", "-i", str(inventory), "--change", str(case.change), "--evidence-dir",
            str(case.evidence), "--json", "--requalify", "platform", "--resume", run_id,
            state_dir=case.state, timeout=1200,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    outcome = json.loads(resumed.stdout)
    assert outcome["resumed_from"] == run_id
    earlier = tuple(e["host"] for e in read_journal(journal) if e.get("event") == "host.committed")
    crashed = case.evidence / json.loads(journal.read_text().splitlines()[0])["change_id"] / run_id
    assert_rolled_out(case, outcome, before, earlier, crashed)
    assert observer.violations() == [], observer.timeline()
    status = run_vqual("verify", str(crashed), state_dir=case.state)
    assert status.returncode in (0, 3), status.stdout + status.stderr  # valid or incomplete
    return outcome, events, observer


def at_step(host: str, step: str) -> Callable[[subprocess.Popen[str], Path], list[dict[str, Any]]]:
    def point(proc: subprocess.Popen[str], journal: Path) -> list[dict[str, Any]]:
        return _wait_journal(journal, proc, _begun(host, step))

    return point


def test_sigkill_during_evacuation_with_a_migration_in_flight_then_resume(
    make_case: Callable[..., Case], inventory: Path
) -> None:
    case = make_case("CHG0007102")

    def migration_in_flight(proc: subprocess.Popen[str], journal: Path) -> list[dict[str, Any]]:
        events = _wait_journal(journal, proc, _begun("kvm1", "evacuate"))
        with case.cluster() as cluster:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                jobs = cluster.tasks_in_flight()
                if any("clone1" in j for j in jobs):
                    return events
                assert proc.poll() is None, "vqual patch ended before the migration was seen"
                time.sleep(0.02)
        raise AssertionError("no migration of clone1 seen in flight")

    _outcome, events, _observer = crash_and_resume(
        case, inventory, "20261126T000000Z-e7ac01", migration_in_flight
    )
    assert not any(e.get("step") == "evacuate" and e.get("event") == "step.done" for e in events)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("host", "step"),
    [("kvm1", "enter_maintenance"), ("kvm1", "reboot"), ("kvm2", "leave_maintenance")],
)
def test_sigkill_at_a_step_boundary_then_resume(
    make_case: Callable[..., Case], inventory: Path, host: str, step: str
) -> None:
    serial = {"enter_maintenance": 3, "reboot": 4, "leave_maintenance": 5}[step]
    case = make_case(f"CHG000710{serial}")
    crash_and_resume(case, inventory, f"20261126T000000Z-e7ac0{serial}", at_step(host, step))
