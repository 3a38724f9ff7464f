"""Read a cluster from the platform into a :class:`ClusterSnapshot` for the planner.

Only :class:`~qualification.platforms.base.HypervisorPlatform` calls, plus three optional ones
an adapter may offer (looked up by name, so the core imports no adapter):

- ``host_details()``: per-host dicts with ``name`` and ``connection_state`` (vSphere);
  a host whose state is not ``connected`` is disconnected. Without it, every host the
  endpoint answers for counts as connected.
- ``vm_summaries()``: the light VM listing (VQ-90; ``base.vm_summaries`` falls back to
  ``vms()``); where it gives each VM's template flag, nothing more is read for it.
- ``templates()``: the names of all templates in one read; else ``vm_details(name)`` with a
  ``template`` flag (vSphere), asked for powered-off VMs only (a template is never powered
  on), one read per stopped VM. The flag is informational: the planner treats templates and
  powered-off VMs alike (they stay where they are).
- ``anti_affinity_rules()``: groups of VM names that must not share a host.
- ``tasks_in_flight()``: descriptions of platform tasks still running.

A VM that is stopping counts as a task in flight, since its state is about to change.

Fire compartments and HA pairs are not the platform's: they come from the inventory
(:func:`site_placement`) and join the snapshot when given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qualification.checks.placement import Cluster, PlacementError, fire_compartment, ha_groups
from qualification.errors import BadInputError, PlatformError
from qualification.platforms.base import (
    STOPPED,
    STOPPING,
    SUSPENDED,
    HostFacts,
    HypervisorPlatform,
    VmSummary,
    vm_summaries,
)
from qualification.rollout.change import RolloutChange
from qualification.rollout.model import ClusterSnapshot, HostState, VmState
from qualification.rollout.planner import natural_key

#: Power states in which a VM holds no host memory or CPU (vSphere suspends to disk).
_NOT_RUNNING = frozenset({STOPPED, SUSPENDED})


@dataclass(frozen=True)
class SitePlacement:
    """What the inventory says about where a cluster's hosts stand (URS-CL-02).

    Attributes:
        compartments: host name (as the platform names it) -> fire compartment.
        ha_pairs: the cluster's ``vqual_anti_affinity`` groups.
    """

    compartments: Mapping[str, str] = field(default_factory=dict)
    ha_pairs: tuple[tuple[str, ...], ...] = ()


def site_placement(hostvars: Mapping[str, Mapping[str, Any]], cluster: str) -> SitePlacement:
    """The fire compartments and HA pairs of ``cluster`` from the inventory: its hosts are the
    inventory hosts whose ``vqual_cluster`` is the cluster, named as the platform names them
    (KVM hosts are inventory hosts; ESXi hosts are listed for their placement variables only).
    The variables are read as the placement checks read them (docs/checks.md, "Placement").

    Raises:
        BadInputError: ``vqual_anti_affinity`` is malformed or the hosts disagree on it.
    """
    members = {h: v for h, v in sorted(hostvars.items()) if v.get("vqual_cluster") == cluster}
    compartments = {h: c for h, v in members.items() if (c := fire_compartment(v)) is not None}
    try:
        groups = ha_groups(Cluster(cluster, dict(members)))
    except PlacementError as exc:
        raise BadInputError(f"inventory: {exc}") from None
    return SitePlacement(compartments, _groups(tuple(g) for g in groups))


def snapshot(
    platform: HypervisorPlatform,
    cluster: str | None,
    change: RolloutChange | None = None,
    *,
    installed: Callable[[str], Mapping[str, str]] | None = None,
    placement: SitePlacement | None = None,
) -> ClusterSnapshot:
    """The cluster as the platform shows it now.

    Args:
        platform: an open platform adapter.
        cluster: the cluster to read. Platforms whose hosts carry no cluster (libvirt: one
            host per connection) give all their hosts under this name. None: the change's
            cluster, else the one cluster the hosts belong to.
        change: its anti-affinity groups join the platform's.
        installed: the patch executor's view of a host's packages or build
            (``PatchExecutor.installed``), so the planner can tell a host already at the
            target; None leaves ``packages`` empty (never at a package target).
        placement: the inventory's fire compartments and HA pairs (:func:`site_placement`);
            None: none known.

    Raises:
        PlatformError: the platform cannot be read, or the cluster is not there.
    """
    hosts = platform.hosts()
    name, members = _cluster_hosts(hosts, cluster or (change.cluster if change else None))
    in_cluster = {h.name for h in members}
    by_uuid = {h.uuid: h.name for h in members if h.uuid}
    connection = _connection_states(platform)
    host_states = [_host_state(facts, connection, installed, placement) for facts in members]
    tasks: list[str] = []
    vm_states = []
    bulk = getattr(platform, "templates", None)
    templates = {str(n) for n in bulk()} if callable(bulk) else None
    seen: dict[str, str] = {}
    for vm in vm_summaries(platform):
        if vm.host not in in_cluster:
            continue
        if vm.power_state == STOPPING:
            tasks.append(f"vm {vm.name} is stopping")
        read = _vm_state(platform, vm, by_uuid, templates)
        if read.name in seen:
            # the planner keys VMs by name: two of one name cannot be planned safely
            raise PlatformError(
                f"vm {vm.name} is listed twice (on {seen[read.name]} and {vm.host}); "
                "names must be unique in the cluster"
            )
        seen[read.name] = vm.host
        vm_states.append(read)
    groups = list(change.anti_affinity) if change else []
    rules = getattr(platform, "anti_affinity_rules", None)
    if callable(rules):
        groups += [tuple(str(m) for m in group) for group in rules()]
    in_flight = getattr(platform, "tasks_in_flight", None)
    if callable(in_flight):
        tasks += [str(t) for t in in_flight()]
    return ClusterSnapshot(
        cluster=name,
        hosts=tuple(sorted(host_states, key=lambda h: natural_key(h.name))),
        vms=tuple(sorted(vm_states, key=lambda v: natural_key(v.name))),
        anti_affinity=_groups(groups),
        tasks_in_flight=tuple(sorted(set(tasks))),
        ha_pairs=placement.ha_pairs if placement else (),
    )


def _host_state(
    facts: HostFacts,
    connection: Mapping[str, str],
    installed: Callable[[str], Mapping[str, str]] | None,
    placement: SitePlacement | None,
) -> HostState:
    software = facts.software
    return HostState(
        name=facts.name,
        vcpus=facts.cpu.count,
        memory_mib=facts.memory_mib,
        connected=connection.get(facts.name, "connected") == "connected",
        in_maintenance=facts.in_maintenance,
        version=str(software.get("version") or software.get("hypervisor_version") or ""),
        build=str(software.get("build") or ""),
        packages=({str(k): str(v) for k, v in installed(facts.name).items()} if installed else {}),
        compartment=placement.compartments.get(facts.name, "") if placement else "",
    )


def _cluster_hosts(hosts: list[HostFacts], cluster: str | None) -> tuple[str, list[HostFacts]]:
    named = sorted({h.cluster for h in hosts if h.cluster is not None})
    if not named:
        # No cluster object on this platform: the endpoint's hosts are the cluster.
        return cluster or "", list(hosts)
    if cluster is None:
        if len(named) != 1:
            raise PlatformError(f"name a cluster: the endpoint has clusters {', '.join(named)}")
        cluster = named[0]
    members = [h for h in hosts if h.cluster == cluster]
    if not members:
        raise PlatformError(
            f"cluster {cluster} not found: the endpoint has clusters {', '.join(named)}"
        )
    return cluster, members


def _connection_states(platform: HypervisorPlatform) -> dict[str, str]:
    details = getattr(platform, "host_details", None)
    if not callable(details):
        return {}
    out: dict[str, str] = {}
    for row in details():
        if isinstance(row, Mapping) and row.get("connection_state"):
            out[str(row["name"])] = str(row["connection_state"])
    return out


def _vm_state(
    platform: HypervisorPlatform,
    vm: VmSummary,
    by_uuid: Mapping[str, str],
    templates: set[str] | None = None,
) -> VmState:
    powered_on = vm.power_state not in _NOT_RUNNING
    template = False
    if vm.template is not None:  # the light listing said
        template = vm.template
    elif templates is not None:
        template = vm.name in templates
    elif not powered_on:
        details = getattr(platform, "vm_details", None)
        if callable(details):
            template = bool(details(vm.name).get("template", False))
    allowed = tuple(
        sorted({by_uuid.get(h, h) for h in vm.placement.allowed_hosts}, key=natural_key)
    )
    return VmState(
        name=vm.name,
        host=vm.host,
        vcpus=vm.vcpus,
        memory_mib=vm.memory_mib,
        powered_on=powered_on and not template,
        allowed_hosts=allowed,
        pinned=allowed == (vm.host,),
        template=template,
    )


def _groups(groups: Iterable[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    unique = {tuple(sorted(set(g), key=natural_key)) for g in groups}
    return tuple(
        sorted((g for g in unique if len(g) >= 2), key=lambda g: [natural_key(n) for n in g])
    )


def describe(snapshot: ClusterSnapshot) -> dict[str, Any]:
    """Counts for a progress line or a record: hosts, VMs, powered on, in maintenance."""
    return {
        "cluster": snapshot.cluster,
        "hosts": len(snapshot.hosts),
        "vms": len(snapshot.vms),
        "powered_on": sum(1 for v in snapshot.vms if v.powered_on),
        "in_maintenance": sorted(h.name for h in snapshot.hosts if h.in_maintenance),
        "digest": snapshot.digest,
    }
