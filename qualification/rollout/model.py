"""The cluster as the planner sees it: hosts and VMs with their configured sizes, frozen.

A :class:`ClusterSnapshot` is read once from the platform (``inventory.snapshot``) and is all
the planner looks at, so the same snapshot always gives the same plan. ``to_json`` /
``from_json`` round-trip exactly; ``digest`` is the SHA-256 of the canonical JSON (RFC 8785).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qualification.errors import BadInputError
from qualification.evidence.canonical import canonical_bytes


@dataclass(frozen=True)
class HostState:
    """One host.

    Attributes:
        vcpus: logical CPUs of the host (the capacity the vCPU overcommit ratio multiplies).
        memory_mib: physical memory.
        connected: the management endpoint reaches the host.
        in_maintenance: the host is in maintenance mode.
        version: hypervisor version as the platform reports it ("" unknown).
        build: hypervisor build ("" unknown).
        packages: installed package versions where known (a patch executor reads them).
        compartment: the host's fire compartment (``site/compartment``) from the inventory;
            "" unknown. The planner keeps HA pairs apart by it (docs/rolling-patch.md).
    """

    name: str
    vcpus: int
    memory_mib: int
    connected: bool
    in_maintenance: bool
    version: str
    build: str
    packages: Mapping[str, str] = field(default_factory=dict)
    compartment: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mib": self.memory_mib,
            "connected": self.connected,
            "in_maintenance": self.in_maintenance,
            "version": self.version,
            "build": self.build,
            "packages": dict(sorted(self.packages.items())),
        }
        if self.compartment:
            # only when known, so snapshots without compartments keep their digests
            data["compartment"] = self.compartment
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostState:
        return _build(
            "host",
            data,
            lambda d: cls(
                name=_str(d["name"]),
                vcpus=_int(d["vcpus"]),
                memory_mib=_int(d["memory_mib"]),
                connected=_bool(d["connected"]),
                in_maintenance=_bool(d["in_maintenance"]),
                version=_str(d["version"]),
                build=_str(d["build"]),
                packages={_str(k): _str(v) for k, v in dict(d.get("packages") or {}).items()},
                compartment=_str(d.get("compartment", "")),
            ),
        )


@dataclass(frozen=True)
class VmState:
    """One VM with its configured (not used) size.

    Attributes:
        host: the host it is registered on.
        powered_on: it runs (or is paused) and so occupies its host's capacity.
        allowed_hosts: host names it may run on; empty means any.
        pinned: it may run only on its current host (placement allows nothing else).
        template: a template (never powered on, never moved by the rollout).
    """

    name: str
    host: str
    vcpus: int
    memory_mib: int
    powered_on: bool
    allowed_hosts: tuple[str, ...] = ()
    pinned: bool = False
    template: bool = False

    def allows(self, host: str) -> bool:
        """True if the VM's placement lets it run on ``host``."""
        if self.pinned:
            return host == self.host
        return not self.allowed_hosts or host in self.allowed_hosts

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "vcpus": self.vcpus,
            "memory_mib": self.memory_mib,
            "powered_on": self.powered_on,
            "allowed_hosts": list(self.allowed_hosts),
            "pinned": self.pinned,
            "template": self.template,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VmState:
        return _build(
            "vm",
            data,
            lambda d: cls(
                name=_str(d["name"]),
                host=_str(d["host"]),
                vcpus=_int(d["vcpus"]),
                memory_mib=_int(d["memory_mib"]),
                powered_on=_bool(d["powered_on"]),
                allowed_hosts=tuple(_str(h) for h in d.get("allowed_hosts") or ()),
                pinned=_bool(d.get("pinned", False)),
                template=_bool(d.get("template", False)),
            ),
        )


@dataclass(frozen=True)
class ClusterSnapshot:
    """A cluster at one moment: hosts and VMs sorted by name, anti-affinity groups, and the
    platform tasks that were still running (empty where the platform cannot tell).

    ``anti_affinity`` groups must not share a host (the platform's rules and the change's);
    ``ha_pairs`` (the inventory's ``vqual_anti_affinity``) must not share a fire compartment,
    which the hosts' ``compartment`` tells.
    """

    cluster: str
    hosts: tuple[HostState, ...]
    vms: tuple[VmState, ...]
    anti_affinity: tuple[tuple[str, ...], ...] = ()
    tasks_in_flight: tuple[str, ...] = ()
    ha_pairs: tuple[tuple[str, ...], ...] = ()

    def host(self, name: str) -> HostState:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def vms_on(self, host: str) -> tuple[VmState, ...]:
        return tuple(vm for vm in self.vms if vm.host == host)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "hosts": [h.to_json() for h in self.hosts],
            "vms": [v.to_json() for v in self.vms],
            "anti_affinity": [list(g) for g in self.anti_affinity],
            "tasks_in_flight": list(self.tasks_in_flight),
            **({"ha_pairs": [list(g) for g in self.ha_pairs]} if self.ha_pairs else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterSnapshot:
        """The snapshot ``to_json`` wrote.

        Raises:
            BadInputError: a field is missing or has the wrong type.
        """
        return _build(
            "snapshot",
            data,
            lambda d: cls(
                cluster=_str(d["cluster"]),
                hosts=tuple(HostState.from_json(h) for h in d["hosts"]),
                vms=tuple(VmState.from_json(v) for v in d["vms"]),
                anti_affinity=tuple(
                    tuple(_str(n) for n in g) for g in d.get("anti_affinity") or ()
                ),
                tasks_in_flight=tuple(_str(t) for t in d.get("tasks_in_flight") or ()),
                ha_pairs=tuple(tuple(_str(n) for n in g) for g in d.get("ha_pairs") or ()),
            ),
        )

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the snapshot's canonical JSON."""
        return hashlib.sha256(canonical_bytes(self.to_json())).hexdigest()


_T = TypeVar("_T")


def _build(what: str, data: Mapping[str, Any], make: Callable[[Mapping[str, Any]], _T]) -> _T:
    if not isinstance(data, Mapping):
        raise BadInputError(f"{what}: expected a JSON object, not {type(data).__name__}")
    label = f"{what} {data['name']}" if isinstance(data.get("name"), str) else what
    try:
        return make(data)
    except KeyError as exc:
        raise BadInputError(f"{label}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{label}: {exc}") from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__} {value!r}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, not {type(value).__name__} {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, not {type(value).__name__} {value!r}")
    return value
