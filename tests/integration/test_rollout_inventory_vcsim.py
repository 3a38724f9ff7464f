"""inventory.snapshot() on a private VMware simulator: a 3-host cluster (vcsim ``-hosts 3``) on
its own loopback address, started and stopped by this module, so the shared lab is not
touched. Then the plan it gives is carried out on the simulator and read back.

Marked ``lab``: it needs the simulator binary the lab builds (run with ``VQUAL_LAB=1``).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from vqual_lab import vcsim
from vqual_lab.component import LabContext

from qualification.errors import PlatformError
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.rollout.change import (
    ChangeTarget,
    ChangeWindow,
    HostExclusion,
    RolloutChange,
)
from qualification.rollout.inventory import snapshot
from qualification.rollout.planner import plan_rollout

pytestmark = pytest.mark.lab

LAB_BIN = Path("/var/lib/vqual-lab/vcsim/bin")
ADDRESS = "127.0.0.185"
HOSTS = ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def change(**kw: object) -> RolloutChange:
    base: dict[str, object] = {
        "change_id": "CHG0000185",
        "title": "t",
        "risk": "high",
        "cluster": "DC0_C0",
        "target": ChangeTarget(hypervisor_version="6.5.0", packages={"esxi-patch": "P1"}),
        "window": ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)),
        "digest": "ab" * 32,
        "path": Path("change.yaml"),
    }
    base.update(kw)
    return RolloutChange(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[vcsim.VcsimInstance, str, str]]:
    """One private simulated vCenter. Named ``lab`` so that it overrides the session's shared
    lab for this module: nothing of the shared lab is needed, brought up or taken down."""
    if os.environ.get("VQUAL_LAB") != "1":
        pytest.skip("the lab is not enabled (VQUAL_LAB=1; `scripts/run test` sets it)")
    lab_dir = tmp_path_factory.mktemp("rollout-vcsim")
    if LAB_BIN.is_dir():  # the lab's build of the same source: a cache hit instead of a build
        shutil.copytree(LAB_BIN, lab_dir / "vcsim" / "bin")
    ctx = LabContext(lab_dir=lab_dir, run_dir=lab_dir / "run", repo_root=None, log=lambda _m: None)
    inst = vcsim.VcsimInstance(
        key="rollout",
        inventory_host="rollout-vc",
        mode="vcenter",
        address=ADDRESS,
        port=_free_port(ADDRESS),
        cluster_hosts=3,
        vms=5,
    )
    component = vcsim.VcsimComponent((inst,))
    status = component.up(ctx)
    try:
        assert status.state == "running", status
        user, password = vcsim.read_credentials(ctx, inst)
        yield inst, user, password
    finally:
        component.down(ctx)


@pytest.fixture
def vc(lab: tuple[vcsim.VcsimInstance, str, str]) -> Iterator[VspherePlatform]:
    inst, user, password = lab
    ep = Endpoint(inst.address, user, password, port=inst.port, validate_certs=False)
    with VspherePlatform(ep) as platform:
        yield platform


def test_snapshot_of_the_simulated_cluster(vc: VspherePlatform) -> None:
    snap = snapshot(vc, "DC0_C0")
    assert snap.cluster == "DC0_C0"
    assert [h.name for h in snap.hosts] == HOSTS
    for h in snap.hosts:
        assert h.connected and not h.in_maintenance
        assert (h.version, h.build) == ("6.5.0", "5969303")
        assert h.vcpus > 0 and h.memory_mib > 0
    facts = {v.name: v for v in vc.vms()}
    assert {v.name for v in snap.vms} == set(facts)
    templates = [v for v in snap.vms if v.template]
    assert len(templates) == 1 and not templates[0].powered_on
    for v in snap.vms:
        assert v.host in HOSTS and v.host == facts[v.name].host
        assert (v.vcpus, v.memory_mib) == (facts[v.name].vcpus, facts[v.name].memory_mib)
        assert v.powered_on == (facts[v.name].power_state == "running")
    # the only cluster on the endpoint is found without naming it
    assert snapshot(vc, None).digest == snap.digest


class _FullListingOnly(VspherePlatform):
    """The adapter without its light listing: ``vm_summaries()`` falls back to ``vms()``."""

    vm_summaries = None  # type: ignore[assignment]


def test_the_light_listing_gives_the_planner_what_the_full_one_does(
    vc: VspherePlatform, lab: tuple[vcsim.VcsimInstance, str, str]
) -> None:
    """VQ-90 on the simulator: the same rows, snapshot and plan as the full listing, read in
    one VM retrieval that asks for no VM's whole configuration."""
    asked: list[tuple[str, ...]] = []
    retrieve = vc._retrieve

    def recording(vim_type: object, paths: tuple[str, ...], *args: object) -> object:
        asked.append(tuple(paths))
        return retrieve(vim_type, paths, *args)

    vc._retrieve = recording  # type: ignore[method-assign, assignment]
    try:
        light = vc.vm_summaries()
    finally:
        del vc._retrieve
    vm_reads = [paths for paths in asked if "runtime.powerState" in paths]
    assert len(vm_reads) == 1 and "config" not in vm_reads[0]
    full = {v.name: v for v in vc.vms()}
    assert [v.name for v in light] == sorted(full)
    for v in light:
        f = full[v.name]
        assert (v.host, v.power_state, v.vcpus, v.memory_mib, v.placement) == (
            f.host, f.power_state, f.vcpus, f.memory_mib, f.placement)
        assert v.template == vc.vm_details(v.name)["template"]
    inst, user, password = lab
    ep = Endpoint(inst.address, user, password, port=inst.port, validate_certs=False)
    with _FullListingOnly(ep) as old:
        before = snapshot(old, "DC0_C0")
    now = snapshot(vc, "DC0_C0")
    assert now == before and now.digest == before.digest
    assert plan_rollout(now, change()).digest == plan_rollout(before, change()).digest


def test_unknown_cluster_is_a_platform_error(vc: VspherePlatform) -> None:
    with pytest.raises(
        PlatformError, match="cluster nope not found: the endpoint has clusters DC0_C0"
    ):
        snapshot(vc, "nope")


def test_the_plan_carried_out_on_the_simulator(vc: VspherePlatform) -> None:
    """Drain the first host as planned, enter maintenance, read back; then undo."""
    snap = snapshot(vc, "DC0_C0")
    plan = plan_rollout(snap, change())
    assert plan.feasible, plan.problems
    assert [p.host for p in plan.order] == HOSTS
    first = plan.order[0]
    running_there = {v.name for v in snap.vms if v.host == first.host and v.powered_on}
    assert {m.vm for m in first.moves} == running_there
    original = {v.name: v.host for v in snap.vms}
    try:
        for move in first.moves:
            assert vc.migrate_vm(move.vm, move.destination).host == move.destination
        vc.enter_maintenance(first.host)
        after = snapshot(vc, "DC0_C0")
        assert after.host(first.host).in_maintenance
        assert not [v for v in after.vms_on(first.host) if v.powered_on]
        # the run would halt on it now, unless the change excludes it or resumes it
        assert any(
            f"host {first.host} is in maintenance mode" in p
            for p in plan_rollout(after, change()).problems
        )
        excluded = change(exclude_hosts=(HostExclusion(first.host, "hardware repair"),))
        again = plan_rollout(after, excluded)
        assert again.feasible and [s.host for s in again.skipped] == [first.host]
        assert all(m.destination != first.host for hp in again.order for m in hp.moves)
        resumed = plan_rollout(after, change(), current=first.host)
        assert resumed.feasible and resumed.order[0].host == first.host
    finally:
        vc.exit_maintenance(first.host)
        for name, host in original.items():
            if vc.vm(name).host != host and vc.vm(name).power_state == "running":
                vc.migrate_vm(name, host)
    assert {v.name: v.host for v in snapshot(vc, "DC0_C0").vms} == original
