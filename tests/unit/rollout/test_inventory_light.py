"""VQ-90: the light VM listing (``vm_summaries``) gives the planner the same cluster, and so
the same decisions, as the full listing (``vms()``), on libvirt's in-process test driver.
The snapshot's digest is pinned, so a change to either listing that moves a decision fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qualification.platforms.base import Placement, VmConfig, VmSummary, vm_summaries
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.rollout.inventory import snapshot
from qualification.rollout.planner import plan_rollout
from tests.unit.rollout.test_inventory import TEST_URI, change

#: The snapshot of the cluster below and its plan, read with the full listing before the light
#: one existed (commit 58c7595): the light listing must give the same bytes.
PINNED = "947f8a1a897fe59da39133b3be88315dd77d5408a6760a80487b9cbee0524932"
PINNED_PLAN = "28c1b9abd8d89533d52f435ceab0f95df716641c4058dfd7b671f0fc8dd98192"


class _FullListingOnly(LibvirtPlatform):
    """The test driver without the light listing: ``vm_summaries()`` falls back to ``vms()``."""

    vm_summaries = None  # type: ignore[assignment]


def _populate(p: LibvirtPlatform) -> None:
    p.create_vm(VmConfig("web1", vcpus=2, memory_mib=256))
    p.create_vm(VmConfig("web2", vcpus=1, memory_mib=128))
    p.create_vm(VmConfig("db1", vcpus=4, memory_mib=512))
    for name in ("web1", "db1"):
        p.power_on(name)
    p.set_placement("db1", Placement((p.host().name,)))


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LibvirtPlatform]:
    with LibvirtPlatform(TEST_URI, state_dir=tmp_path) as p:
        _populate(p)
        yield p


def test_the_light_listing_has_the_full_listings_rows(platform: LibvirtPlatform) -> None:
    light = platform.vm_summaries()
    assert [v.name for v in light] == ["db1", "test", "web1", "web2"]
    assert light == [VmSummary.of(v) for v in platform.vms()]
    assert {v.name: v.power_state for v in light}["web2"] == "stopped"
    assert {v.name: v.placement for v in light}["db1"].allowed_hosts == (platform.host().name,)


def test_same_snapshot_and_plan_as_the_full_listing(tmp_path: Path) -> None:
    with LibvirtPlatform(TEST_URI, state_dir=tmp_path) as p:
        _populate(p)
        light = snapshot(p, "lab", change(groups=(("web1", "db1"),)))
    with _FullListingOnly(TEST_URI, state_dir=tmp_path) as p:
        _populate(p)
        assert vm_summaries(p) == [VmSummary.of(v) for v in p.vms()]
        full = snapshot(p, "lab", change(groups=(("web1", "db1"),)))
    assert light == full
    assert light.digest == full.digest == PINNED
    assert plan_rollout(light, change()).digest == plan_rollout(full, change()).digest \
        == PINNED_PLAN


def test_a_libvirt_cluster_lists_light_as_it_lists_in_full(tmp_path: Path) -> None:
    from qualification.platforms.libvirt.cluster import LibvirtCluster

    cluster = LibvirtCluster({"hv1": TEST_URI, "hv2": TEST_URI}, cluster="lab",
                             state_dir=tmp_path)
    try:
        _populate(cluster.member("hv1"))
        light = cluster.vm_summaries()
        assert light == [VmSummary.of(v) for v in cluster.vms()]
        # one test driver behind both names: each VM once, named by the cluster's host
        assert [v.name for v in light] == ["db1", "test", "web1", "web2"]
        assert {v.host for v in light} <= {"hv1", "hv2"}
    finally:
        cluster.close()
