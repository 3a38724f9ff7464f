"""The rollout planner: from a cluster snapshot and a change, the host order and, for every host,
where each of its VMs goes while it is patched. Pure and deterministic: the same snapshot and
change give the same plan and the same digest.

How a plan is made (docs/rolling-patch.md, "The plan"):

- Hosts are taken one at a time in natural name order (``esx2`` before ``esx10``); a host the
  change excludes, one already at the target, or one an earlier run committed is *skipped*
  with its reason. A host that is disconnected, or in maintenance without being excluded, is a
  problem (the run would halt on it).
- Draining a host is simulated on the hosts that are in service at that moment (never the
  host itself, never an excluded, disconnected or in-maintenance host), by *configured* vCPUs
  and memory of the powered-on VMs (not current use), keeping ``headroom`` of each host free
  and counting ``vcpu_ratio`` vCPUs per logical CPU. Placement rules (allowed hosts, pinning)
  and anti-affinity groups are kept. A drained host returns before the next one starts, so the
  simulation carries each move forward.
- Each VM on the host is exactly one of: *moved* (live migration to the chosen destination);
  *stopped* (it cannot be moved but the change approves stopping it; it stays on its host and
  runs there again afterwards); *idle* (powered off or a template: it stays registered on the
  host, because neither vSphere, with powered-off VMs not evacuated, nor vqual's libvirt
  maintenance mode needs the host empty of stopped VMs, and a cold move would only add
  risk); or *blocked* (none of these: a problem naming the VM, the host and why).
- Members of an HA pair (the inventory's ``vqual_anti_affinity``) never share a fire
  compartment where the hosts carry compartments: such a VM moves only within its own
  compartment, else stops when approved, else is blocked with the pair, hosts and
  compartments named; a pair that already shares one is a problem.
- A destination is chosen among the allowed hosts with room: hosts already patched in this
  rollout first (so a VM moves as few times as possible), then the one with the largest share
  of memory still free after the move, then by name.

The plan digest covers the change digest, the cluster, the order with every decision, the
skipped hosts and the problems; not the snapshot digest (an inventory change that changes no
decision leaves the digest alone) and never a time.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.rollout.change import RolloutChange
from qualification.rollout.model import ClusterSnapshot, HostState, VmState

#: Version of the plan's JSON form (and so of what its digest covers).
PLAN_VERSION = 1


@dataclass(frozen=True)
class Move:
    """A live migration of ``vm`` to ``destination`` while its host is drained."""

    vm: str
    destination: str


@dataclass(frozen=True)
class HostPlan:
    """What happens to the VMs of one host when its turn comes.

    Attributes:
        moves: live migrations, in the order they are simulated (largest VM first).
        stops: VMs approved to stop: powered off on this host for the patch, started again
            after it.
        idle: powered-off VMs and templates that stay registered on the host.
        blocked: VMs that can be neither moved nor stopped (each is also a problem).
    """

    host: str
    moves: tuple[Move, ...] = ()
    stops: tuple[str, ...] = ()
    idle: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "moves": [{"vm": m.vm, "destination": m.destination} for m in self.moves],
            "stops": list(self.stops),
            "idle": list(self.idle),
            "blocked": list(self.blocked),
        }


@dataclass(frozen=True)
class SkippedHost:
    """A host the rollout does not touch, and why (a ``host.skipped`` record says so)."""

    host: str
    reason: str


@dataclass(frozen=True)
class RolloutPlan:
    """The plan for one change on one cluster. ``feasible`` when it has no problems."""

    change_id: str
    cluster: str
    change_digest: str
    snapshot_digest: str
    order: tuple[HostPlan, ...]
    skipped: tuple[SkippedHost, ...]
    problems: tuple[str, ...]
    digest: str

    @property
    def feasible(self) -> bool:
        return not self.problems

    def host_plan(self, host: str) -> HostPlan:
        """The plan of ``host``; KeyError if it is not in the order."""
        for plan in self.order:
            if plan.host == host:
                return plan
        raise KeyError(host)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON, including ``digest`` and ``snapshot_digest``."""
        data = _digested_part(
            self.change_id,
            self.cluster,
            self.change_digest,
            self.order,
            self.skipped,
            self.problems,
        )
        data["feasible"] = self.feasible
        data["snapshot_digest"] = self.snapshot_digest
        data["digest"] = self.digest
        return data


def host_capacity(host: HostState, change: RolloutChange) -> tuple[float, float]:
    """The vCPUs and MiB of memory powered-on VMs may take on ``host`` under the change's
    headroom and vCPU overcommit ratio."""
    keep = 1.0 - change.headroom
    return host.vcpus * change.vcpu_ratio * keep, host.memory_mib * keep


NaturalKey = tuple[tuple[tuple[int, int | str], ...], str]


def natural_key(name: str) -> NaturalKey:
    """Sort key that orders ``esx2`` before ``esx10`` (digit runs compare as numbers); the
    name itself breaks ties (``a01``/``a1``), so the order never depends on input order."""
    parts = tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )
    return parts, name


def at_target(host: HostState, change: RolloutChange) -> bool:
    """True if ``host`` already shows every field of the change's target.

    Unknown values (an empty build, packages the snapshot does not list) never count as
    reached, so a host is skipped as patched only on positive evidence.
    """
    target = change.target
    if target.hypervisor_version is not None and host.version != target.hypervisor_version:
        return False
    if target.hypervisor_build is not None and host.build != target.hypervisor_build:
        return False
    return all(host.packages.get(name) == ver for name, ver in target.packages.items())


def plan_rollout(
    snapshot: ClusterSnapshot,
    change: RolloutChange,
    *,
    committed: Mapping[str, str] | None = None,
    current: str | None = None,
) -> RolloutPlan:
    """Plan the rolling patch of ``snapshot``'s cluster for ``change``.

    Args:
        snapshot: the cluster as read from the platform.
        change: the loaded change file.
        committed: hosts an earlier run of this change already committed, with the reason to
            show (resume); they are skipped and count as patched.
        current: the host an interrupted run was working on (resume): it comes first, and
            being in maintenance is not a problem for it.

    Returns:
        The plan; check ``plan.feasible`` before acting on it.
    """
    return _Planner(snapshot, change, dict(committed or {}), current).plan()


class _Planner:
    def __init__(
        self,
        snapshot: ClusterSnapshot,
        change: RolloutChange,
        committed: dict[str, str],
        current: str | None,
    ) -> None:
        self.snap = snapshot
        self.change = change
        self.committed = committed
        self.current = current
        self.problems: list[str] = []
        self.hosts = {h.name: h for h in snapshot.hosts}
        self.vms = {v.name: v for v in snapshot.vms}
        self.where = {v.name: v.host for v in snapshot.vms}
        # Stopped-for-patch VMs run again on their host, so every powered-on VM keeps its load.
        self.running = {v.name for v in snapshot.vms if v.powered_on and not v.template}
        self.caps = {h.name: host_capacity(h, change) for h in snapshot.hosts}
        self.used_cpu = dict.fromkeys(self.hosts, 0.0)
        self.used_mem = dict.fromkeys(self.hosts, 0.0)
        for vm in snapshot.vms:
            if vm.name in self.running and vm.host in self.hosts:
                self.used_cpu[vm.host] += vm.vcpus
                self.used_mem[vm.host] += vm.memory_mib
        # HA pairs never share a host either; across fire compartments they are kept apart
        # only where the hosts carry compartments (docs/rolling-patch.md, "Fire compartments").
        self.mates = _mates(snapshot.anti_affinity + change.anti_affinity + snapshot.ha_pairs)
        self.fire = {h.name: h.compartment for h in snapshot.hosts if h.compartment}
        self.pairs_of: dict[str, tuple[str, ...]] = {}
        for group in snapshot.ha_pairs:
            for member in group:
                self.pairs_of.setdefault(member, group)
        # Natural order computed once: candidate hosts are scanned in it, so ties go to the
        # first host by name without building sort keys in the inner loop.
        self.host_order = sorted(self.hosts, key=natural_key)
        self.vm_rank = {name: i for i, name in enumerate(sorted(self.vms, key=natural_key))}
        self.in_compartment: dict[str, list[str]] = {}
        for name in self.host_order:
            if name in self.fire:
                self.in_compartment.setdefault(self.fire[name], []).append(name)

    def plan(self) -> RolloutPlan:
        snap, change = self.snap, self.change
        if snap.cluster != change.cluster:
            self.problems.append(
                f"the change is for cluster {change.cluster}, the snapshot is of {snap.cluster}"
            )
        if snap.tasks_in_flight:
            self.problems.append(
                "platform tasks still in flight: " + ", ".join(snap.tasks_in_flight)
            )
        for exclusion in change.exclude_hosts:
            if exclusion.host not in self.hosts:
                self.problems.append(
                    f"exclude_hosts names host {exclusion.host}, which is not in cluster "
                    f"{snap.cluster}"
                )
        for vm in self.strays():
            if vm.host not in self.hosts:
                self.problems.append(
                    f"vm {vm.name} is on host {vm.host or '(none)'}, which is not in cluster "
                    f"{snap.cluster}"
                )
        if self.fire:
            self.problems += self.shared_compartments()
        skipped, todo = self.classify_hosts()
        # A host in maintenance at the start (the resumed one) is out until its turn ends.
        self.out: set[str] = {n for n in todo if self.hosts[n].in_maintenance}
        order = [self.drain(name) for name in todo]
        part = _digested_part(
            change.change_id,
            snap.cluster,
            change.digest,
            tuple(order),
            tuple(skipped),
            tuple(self.problems),
        )
        return RolloutPlan(
            change_id=change.change_id,
            cluster=snap.cluster,
            change_digest=change.digest,
            snapshot_digest=snap.digest,
            order=tuple(order),
            skipped=tuple(skipped),
            problems=tuple(self.problems),
            digest=hashlib.sha256(canonical_bytes(part)).hexdigest(),
        )

    def classify_hosts(self) -> tuple[list[SkippedHost], list[str]]:
        """(skipped hosts with their reasons, hosts to patch in order); problems as found."""
        change = self.change
        skipped: list[SkippedHost] = []
        todo: list[str] = []
        # out of service for the whole rollout: never a destination
        self.unusable: set[str] = set()
        self.patched: set[str] = set()
        for name in sorted(self.hosts, key=natural_key):
            host = self.hosts[name]
            excluded = change.exclusion(name)
            if excluded is not None:
                skipped.append(SkippedHost(name, f"excluded by the change: {excluded.reason}"))
                self.unusable.add(name)
            elif not host.connected:
                self.problems.append(f"host {name} is not connected")
                self.unusable.add(name)
            elif name in self.committed:
                skipped.append(SkippedHost(name, self.committed[name]))
                self.patched.add(name)
                if host.in_maintenance:
                    self.problems.append(
                        f"host {name} is committed but in maintenance mode; "
                        "take it out of maintenance or exclude it"
                    )
                    self.unusable.add(name)
            elif host.in_maintenance and name != self.current:
                self.problems.append(
                    f"host {name} is in maintenance mode and not excluded by the change "
                    "(exclude it with a reason, or take it out of maintenance)"
                )
                self.unusable.add(name)
            elif at_target(host, change) and name != self.current:
                skipped.append(SkippedHost(name, f"already at the target ({_target_text(change)})"))
                self.patched.add(name)
            else:
                todo.append(name)
        if self.current is not None and self.current in todo:
            todo.remove(self.current)
            todo.insert(0, self.current)
        return skipped, todo

    def drain(self, host: str) -> HostPlan:
        self.out.add(host)
        on_host = [self.vms[n] for n in self.residents[host]]
        # Largest first packs best; the name makes equal sizes deterministic.
        on_host.sort(key=lambda v: (-v.memory_mib, -v.vcpus, self.vm_rank[v.name]))
        moves: list[Move] = []
        stops: list[str] = []
        idle: list[str] = []
        blocked: list[str] = []
        for vm in on_host:
            if vm.template or vm.name not in self.running:
                idle.append(vm.name)
                continue
            destination, why_not = self.destination(vm, host)
            if destination is not None:
                moves.append(Move(vm.name, destination))
                self.place(vm, host, destination)
            elif self.change.stop_approval(vm.name) is not None:
                stops.append(vm.name)
            else:
                blocked.append(vm.name)
                self.problems.append(
                    self.pair_prefix(vm.name)
                    + f"vm {vm.name} on host {host} is blocking: {why_not}, "
                    "and the change does not approve stopping it"
                )
        self.out.discard(host)
        self.patched.add(host)
        return HostPlan(
            host=host,
            moves=tuple(moves),
            stops=tuple(sorted(stops, key=natural_key)),
            idle=tuple(sorted(idle, key=natural_key)),
            blocked=tuple(sorted(blocked, key=natural_key)),
        )

    def strays(self) -> list[VmState]:
        """VMs on a host outside the cluster, by name: only these are sorted, not every VM."""
        found = [v for v in self.snap.vms if v.host not in self.hosts]
        return sorted(found, key=lambda v: natural_key(v.name))

    @cached_property
    def residents(self) -> defaultdict[str, set[str]]:
        """Host -> the VMs registered on it, kept with ``where`` by :meth:`place`, so a drain
        does not scan every VM of the cluster."""
        index: defaultdict[str, set[str]] = defaultdict(set)
        for name, host in self.where.items():
            index[host].add(name)
        return index

    def place(self, vm: VmState, source: str, destination: str) -> None:
        self.where[vm.name] = destination
        self.residents[source].discard(vm.name)
        self.residents[destination].add(vm.name)
        self.used_cpu[source] -= vm.vcpus
        self.used_mem[source] -= vm.memory_mib
        self.used_cpu[destination] += vm.vcpus
        self.used_mem[destination] += vm.memory_mib

    def destination(self, vm: VmState, source: str) -> tuple[str | None, str]:
        """The chosen destination, or None and why no host takes the VM."""
        if vm.pinned:
            return None, "it is pinned to its host"
        candidates, own = self.host_order, None
        if self.fire and vm.name in self.pairs_of:
            # an HA pair member moves only within its own fire compartment
            own = self.compartment(source)
            candidates = self.in_compartment.get(own, [])
        allowed = [
            name
            for name in candidates
            if name != source
            and name not in self.unusable
            and name not in self.out
            and vm.allows(name)
        ]
        if not allowed:
            if own is not None:
                return None, (
                    f"no other host of its fire compartment {own} is in service"
                    + (" and allowed by its placement" if vm.allowed_hosts else "")
                    + " (anywhere else the pair would share a compartment)"
                )
            if vm.allowed_hosts:
                return None, (
                    "its placement allows only "
                    + ", ".join(sorted(vm.allowed_hosts, key=natural_key))
                    + ", none of them in service"
                )
            return None, "no other host is in service"
        taken = self.mate_hosts(vm)
        spread = [n for n in allowed if n not in taken]
        if not spread:
            mates = sorted(self.mates.get(vm.name, ()), key=natural_key)
            return None, ("anti-affinity with " + ", ".join(mates) + " leaves no allowed host")
        best: str | None = None
        best_key = (2, 0.0)
        for name in spread:  # in natural order: on equal keys the first name stays
            cap_cpu, cap_mem = self.caps[name]
            free_mem = cap_mem - self.used_mem[name] - vm.memory_mib
            if self.used_cpu[name] + vm.vcpus > cap_cpu or free_mem < 0:
                continue
            key = (0 if name in self.patched else 1, -(free_mem / cap_mem if cap_mem else 0.0))
            if key < best_key:
                best, best_key = name, key
        if best is None:
            # Name the host that comes closest: the most copies of this VM it could still take.
            def room(n: str) -> float:
                cap_cpu, cap_mem = self.caps[n]
                return min(
                    (cap_cpu - self.used_cpu[n]) / vm.vcpus if vm.vcpus else float("inf"),
                    (cap_mem - self.used_mem[n]) / vm.memory_mib if vm.memory_mib else float("inf"),
                )

            near = max(spread, key=room)  # max keeps the first of equals, in natural order
            cap_cpu, cap_mem = self.caps[near]
            return None, (
                f"capacity shortfall: it needs {vm.vcpus} vCPU and {vm.memory_mib} MiB; the "
                f"most room is on {near}: {max(cap_cpu - self.used_cpu[near], 0):g} vCPU and "
                f"{max(cap_mem - self.used_mem[near], 0):g} MiB free under "
                f"{self.change.headroom:.0%} headroom"
            )
        return best, ""

    def compartment(self, host: str) -> str:
        """The fire compartment of ``host``; one of its own when the inventory gives none."""
        return self.fire.get(host) or f"(none: {host})"

    def pair_prefix(self, vm: str) -> str:
        """For an HA pair member where compartments are known: the pair, its hosts and their
        compartments (in that order), to lead the problem line; else ""."""
        group = self.pairs_of.get(vm)
        if not self.fire or group is None:
            return ""
        hosts = [self.where.get(m) or "(none)" for m in group]
        places = [self.compartment(h) for h in hosts]
        return (
            f"anti-affinity group {', '.join(group)} (hosts {', '.join(hosts)}; "
            f"fire compartments {', '.join(places)}): "
        )

    def shared_compartments(self) -> list[str]:
        """Problems for HA pairs whose members already share a fire compartment (powered off
        or not: a stopped member starts where it is registered)."""
        found = []
        for group in self.snap.ha_pairs:
            by_place: dict[str, list[str]] = {}
            for member in group:
                host = self.where.get(member)
                if host in self.hosts:
                    by_place.setdefault(self.compartment(host), []).append(member)
            for place, members in by_place.items():
                if len(members) > 1:
                    found.append(
                        self.pair_prefix(group[0]) + f"{' and '.join(members)} already share "
                        f"fire compartment {place}; place them apart before the rolling patch"
                    )
        return found

    def mate_hosts(self, vm: VmState) -> set[str | None]:
        """The hosts where a running anti-affinity mate of ``vm`` is: it may not go there.
        One pass over its mates, not one per candidate host."""
        return {
            self.where.get(mate) for mate in self.mates.get(vm.name, ()) if mate in self.running
        }


def _mates(groups: tuple[tuple[str, ...], ...]) -> dict[str, frozenset[str]]:
    mates: dict[str, set[str]] = {}
    for group in groups:
        for vm in group:
            mates.setdefault(vm, set()).update(m for m in group if m != vm)
    return {vm: frozenset(others) for vm, others in mates.items()}


def _target_text(change: RolloutChange) -> str:
    t = change.target
    parts = []
    if t.hypervisor_version is not None:
        parts.append(f"version {t.hypervisor_version}")
    if t.hypervisor_build is not None:
        parts.append(f"build {t.hypervisor_build}")
    parts += [f"{name} {ver}" for name, ver in t.packages.items()]
    return ", ".join(parts)


def _digested_part(
    change_id: str,
    cluster: str,
    change_digest: str,
    order: tuple[HostPlan, ...],
    skipped: tuple[SkippedHost, ...],
    problems: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "v": PLAN_VERSION,
        "change_id": change_id,
        "cluster": cluster,
        "change_digest": change_digest,
        "order": [p.to_json() for p in order],
        "skipped": [{"host": s.host, "reason": s.reason} for s in skipped],
        "problems": list(problems),
    }


def render_plan(plan: RolloutPlan) -> str:
    """The plan as text for a person: order, every VM's fate, skipped hosts, problems, digest."""
    lines = [
        f"Rolling patch plan: change {plan.change_id}, cluster {plan.cluster}",
        f"  plan digest      {plan.digest}",
        f"  change digest    {plan.change_digest}",
        f"  snapshot digest  {plan.snapshot_digest}",
        "  feasible         "
        + ("yes" if plan.feasible else f"NO ({len(plan.problems)} problem(s), nothing may run)"),
        "",
        "Order:" if plan.order else "Order: (no host to patch)",
    ]
    for i, host in enumerate(plan.order, 1):
        counts = f"{len(host.moves)} to move, {len(host.stops)} to stop, {len(host.idle)} idle" + (
            f", {len(host.blocked)} BLOCKED" if host.blocked else ""
        )
        lines.append(f"  {i:>2}. {host.host}  ({counts})")
        lines += [f"        move {m.vm} -> {m.destination}" for m in host.moves]
        lines += [f"        stop {vm} (approved to stop)" for vm in host.stops]
        lines += [f"        stays {vm} (powered off or template)" for vm in host.idle]
        lines += [f"        BLOCKED {vm}" for vm in host.blocked]
    if plan.skipped:
        lines += ["", "Skipped:"]
        lines += [f"  - {s.host}: {s.reason}" for s in plan.skipped]
    if plan.problems:
        lines += ["", "Problems:"]
        lines += [f"  - {p}" for p in plan.problems]
    return "\n".join(lines) + "\n"
