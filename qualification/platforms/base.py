"""The hypervisor platform contract: one Protocol every adapter (libvirt, vSphere, Hyper-V) meets.

Adapters return plain frozen dataclasses, so checks, evidence and reports never see a vendor
object. Every failure is a :class:`~qualification.errors.PlatformError` with one line that
names the operation and the object; an operation the platform cannot perform raises
:class:`~qualification.errors.NotSupported` (verdict ``not-executed``, never ``pass``).
Credentials never appear in facts or messages: endpoints are reported through
:func:`redact_endpoint`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from ..errors import NotSupported, VqualError

# Power states every adapter maps its own states onto.
RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
STOPPING = "stopping"
CRASHED = "crashed"
UNKNOWN = "unknown"
POWER_STATES = (RUNNING, STOPPED, PAUSED, SUSPENDED, STOPPING, CRASHED, UNKNOWN)


class Facts:
    """Mixin: JSON form of a facts dataclass (what probes return as observation values)."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _jsonable(asdict(self))  # type: ignore[call-overload]
        return data


def _jsonable(value: Any) -> Any:
    # asdict leaves tuples and mappings as they are; observations must be plain JSON.
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class PlatformAbout(Facts):
    """What the endpoint is.

    Attributes:
        platform: adapter name: ``libvirt``, ``vsphere``, ``hyperv``.
        product: hypervisor type as the platform names it (``QEMU``, ``TEST``, ``VMware ESX``).
        version: hypervisor version, dotted.
        api_version: version of the management API or client library (libvirt: the library).
        endpoint: the connection endpoint, credentials removed.
    """

    platform: str
    product: str
    version: str
    api_version: str
    endpoint: str


@dataclass(frozen=True)
class CpuFacts(Facts):
    """Host CPU as the hypervisor reports it."""

    model: str
    arch: str
    vendor: str | None
    count: int  # logical CPUs
    mhz: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostFacts(Facts):
    """A physical host (pCS) as seen through its hypervisor.

    Attributes:
        name: host name as the platform reports it.
        uuid: host UUID, or None where the platform has none.
        hardware: system vendor/product/serial where known.
        firmware: BIOS/UEFI vendor, version, date where known.
        software: hypervisor product and versions.
        security_models: active security drivers (sVirt ``selinux``/``apparmor``, ...).
        in_maintenance: maintenance mode (libvirt: vqual's own marker, see the adapter).
        cluster: cluster name, or None.
    """

    name: str
    uuid: str | None
    cpu: CpuFacts
    memory_mib: int
    numa_nodes: int
    hardware: Mapping[str, str] = field(default_factory=dict)
    firmware: Mapping[str, str] = field(default_factory=dict)
    software: Mapping[str, str] = field(default_factory=dict)
    security_models: tuple[str, ...] = ()
    in_maintenance: bool = False
    cluster: str | None = None


@dataclass(frozen=True)
class ClusterFacts(Facts):
    name: str
    hosts: tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatastoreFacts(Facts):
    """A datastore (vSphere) or storage pool (libvirt) or CSV (Hyper-V)."""

    name: str
    kind: str
    active: bool
    persistent: bool
    autostart: bool
    capacity_bytes: int
    allocation_bytes: int
    available_bytes: int
    path: str | None = None


@dataclass(frozen=True)
class NetworkFacts(Facts):
    """A virtual network / port group / virtual switch."""

    name: str
    active: bool
    persistent: bool
    autostart: bool
    bridge: str | None = None
    forward_mode: str | None = None


@dataclass(frozen=True)
class DiskFacts(Facts):
    target: str
    device: str  # disk, cdrom, floppy, lun
    source: str | None
    bus: str | None = None
    driver_format: str | None = None
    readonly: bool = False


@dataclass(frozen=True)
class NicFacts(Facts):
    mac: str | None
    network: str | None
    model: str | None
    kind: str  # network, bridge, direct, user, ...


@dataclass(frozen=True)
class Placement(Facts):
    """Where a VM may run: host names or UUIDs; empty means any host."""

    allowed_hosts: tuple[str, ...] = ()

    def allows(self, host: HostFacts) -> bool:
        if not self.allowed_hosts:
            return True
        return host.name in self.allowed_hosts or (
            host.uuid is not None and host.uuid in self.allowed_hosts
        )


@dataclass(frozen=True)
class VmFacts(Facts):
    """A VM's identity, placement, power state and configuration.

    Attributes:
        host: the host it is registered on (name).
        machine: machine type / hardware version / generation.
        firmware: ``bios`` or ``efi``; ``secure_boot`` says whether secure boot is on.
        devices: other device classes present (``tpm``, ``hostdev``, ``serial``, ...).
        snapshots: snapshot names.
        config_digest: SHA-256 of the platform's native configuration text.
    """

    name: str
    uuid: str
    host: str
    power_state: str
    persistent: bool
    autostart: bool
    vcpus: int
    memory_mib: int
    max_memory_mib: int
    os_type: str | None = None
    arch: str | None = None
    machine: str | None = None
    firmware: str = "bios"
    secure_boot: bool = False
    disks: tuple[DiskFacts, ...] = ()
    nics: tuple[NicFacts, ...] = ()
    devices: tuple[str, ...] = ()
    snapshots: tuple[str, ...] = ()
    placement: Placement = field(default_factory=Placement)
    config_digest: str = ""


@dataclass(frozen=True)
class VmSummary(Facts):
    """A VM as a listing of many VMs needs it: where it is, whether it runs, what it holds and
    where it may go (the planner, the rolling patch's steps and its observer). One read for all
    VMs, not each VM's whole configuration (VQ-90).

    Attributes:
        template: whether the VM is a template; None where the listing does not say.
    """

    name: str
    host: str
    power_state: str
    vcpus: int
    memory_mib: int
    placement: Placement = field(default_factory=Placement)
    template: bool | None = None

    @classmethod
    def of(cls, vm: VmFacts) -> VmSummary:
        """The summary of a full listing's row (``template`` unknown: VmFacts has none)."""
        return cls(name=vm.name, host=vm.host, power_state=vm.power_state, vcpus=vm.vcpus,
                   memory_mib=vm.memory_mib, placement=vm.placement)


def vm_summaries(platform: HypervisorPlatform) -> list[VmSummary]:
    """Every VM, light: the adapter's ``vm_summaries()`` where it has one (vSphere, libvirt),
    else the full listing cut down, so an adapter without it lists the same rows."""
    light = getattr(platform, "vm_summaries", None)
    if callable(light):
        return list(light())
    return [VmSummary.of(vm) for vm in platform.vms()]


@dataclass(frozen=True)
class VmConfig:
    """What to create. ``native`` (platform-specific definition) wins over the fields.

    Attributes:
        disk_mib: size of one new empty disk (0: none). Snapshots of a running VM need one
            on some platforms (QEMU keeps internal snapshots in qcow2 disks).
        pool: datastore/pool for the disk; default the platform's choice.
    """

    name: str
    vcpus: int = 1
    memory_mib: int = 64
    os_type: str = "hvm"
    arch: str | None = None
    disk_mib: int = 0
    pool: str | None = None
    native: str | None = None


@dataclass(frozen=True)
class SnapshotFacts(Facts):
    name: str
    vm: str
    power_state: str  # the VM's state captured in the snapshot
    current: bool
    created: int | None = None  # epoch seconds, as the platform reports it


@dataclass(frozen=True)
class EventFacts(Facts):
    time: datetime
    kind: str
    target: str
    message: str
    user: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["time"] = self.time.isoformat()
        return data


@runtime_checkable
class HypervisorPlatform(Protocol):
    """A hypervisor management endpoint.

    Read methods raise :class:`~qualification.errors.PlatformError` when the endpoint cannot
    answer; operations raise :class:`~qualification.errors.NotSupported` when the platform
    cannot perform them, and ``PlatformError`` when it refused or failed. Operations that
    change state return the object's facts after the change, so callers can record the
    ``after`` state without a second query. An adapter may add ``vm_summaries()``, a light
    listing of every VM (:class:`VmSummary`, one read); callers go through
    :func:`vm_summaries`, which falls back to :meth:`vms`.
    """

    platform: str

    def about(self) -> PlatformAbout: ...

    def hosts(self) -> list[HostFacts]: ...

    def host(self, name: str | None = None) -> HostFacts:
        """One host by name; ``None`` means the endpoint's only host (error if several)."""
        ...

    def clusters(self) -> list[ClusterFacts]: ...

    def datastores(self) -> list[DatastoreFacts]: ...

    def networks(self) -> list[NetworkFacts]: ...

    def vms(self) -> list[VmFacts]: ...

    def vm(self, name: str) -> VmFacts: ...

    def vm_exists(self, name: str) -> bool: ...

    def create_vm(self, config: VmConfig) -> VmFacts: ...

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        """Remove a stopped VM's definition (and its snapshots' metadata); with
        ``delete_storage`` also the disks the platform manages."""
        ...

    def power_on(self, name: str) -> VmFacts: ...

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        """Hard power off, or a guest shutdown waited for up to ``timeout_s``."""
        ...

    def snapshots(self, vm: str) -> list[SnapshotFacts]: ...

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts: ...

    def snapshot_revert(self, vm: str, name: str) -> VmFacts: ...

    def snapshot_delete(self, vm: str, name: str) -> None: ...

    def clone_vm(self, source: str, name: str) -> VmFacts: ...

    def migrate_vm(self, name: str, destination: str, *, live: bool = True) -> VmFacts:
        """Move a VM to ``destination`` (a host name, or for libvirt a destination URI)."""
        ...

    def placement(self, vm: str) -> Placement: ...

    def set_placement(self, vm: str, placement: Placement) -> VmFacts: ...

    def enter_maintenance(self, host: str | None = None) -> HostFacts: ...

    def exit_maintenance(self, host: str | None = None) -> HostFacts: ...

    def events(self, since: datetime | None = None) -> list[EventFacts]: ...

    def close(self) -> None: ...


#: A VM name every platform takes as it is (also a libvirt domain name and a file name).
SAFE_VM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/]*@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pass|secret|token|auth)[^=&]*=)[^&]*")


def redact_endpoint(uri: str) -> str:
    """The endpoint without secrets: a password in the user part or the query becomes ``***``."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\1:***@", uri))


def secrets_of(uri: str) -> tuple[str, ...]:
    """Secret substrings of an endpoint, to scrub from messages the platform returns."""
    found: list[str] = []
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*:([^/]*)@", uri)
    if m and m.group(1):
        found.append(m.group(1))
    for q in re.finditer(r"(?i)[?&](?:password|passwd|pass|secret|token|auth)[^=&]*=([^&]*)", uri):
        if q.group(1):
            found.append(q.group(1))
    return tuple(found)


def one_line(text: str, secrets: tuple[str, ...] = ()) -> str:
    """A platform message as one line with known secrets removed."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())


class BadArgs(ValueError):
    """A probe request's arguments are malformed (error observation, nothing executed)."""


def probe_observation(
    *,
    value: Any = None,
    raw: str | None = None,
    method: str = "",
    error: str | None = None,
    not_executed: str | None = None,
    actions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One probe answer in the shape ``qualification.checks.base.Observation`` reads."""
    return {
        "value": value,
        "raw": raw,
        "method": method,
        "error": error,
        "not_executed": not_executed,
        "actions": actions or [],
    }


# -- the one request loop every controller-side probe runs ------------------------------------


class ProbeSession(Protocol):
    """What a plug-in opens for one probe call: a connection plus what it caches for the call.

    Attributes:
        secrets: strings to scrub from every message the call returns (passwords).
    """

    secrets: tuple[str, ...]

    def close(self) -> None: ...


S = TypeVar("S", bound=ProbeSession)


@dataclass(frozen=True)
class OqContext:
    """What an OQ scenario knows of its call.

    Attributes:
        run_id: the run's id (names its throwaway VMs; may be empty outside a run).
        position: 1-based position of the request in the call.
    """

    run_id: str
    position: int


#: An IQ observation: reads the session, returns a :func:`probe_observation`.
IqMethod = Callable[[S, Mapping[str, Any]], dict[str, Any]]
#: An OQ scenario: changes state on the platform (never in check mode), returns an observation
#: with its ``actions``.
OqScenario = Callable[[S, OqContext, Mapping[str, Any]], dict[str, Any]]


def _has_actions(observation: Mapping[str, Any]) -> bool:
    return bool(observation.get("actions"))


@dataclass(frozen=True)
class ObservationTable(Generic[S]):
    """A platform's probe methods: IQ reads and OQ scenarios, by method name.

    Attributes:
        probe: the probe's name (``libvirt``), used in messages.
        iq: read-only methods, in the order the docs list them.
        oq: state-changing scenarios; in check mode each is ``not-executed``.
        vendor_errors: exceptions of the vendor library a method may let through (reported
            as ``<method> failed: <message>``, secrets removed).
        changed: whether an observation changed the platform (default: it has actions).
    """

    probe: str
    iq: Mapping[str, IqMethod[S]]
    oq: Mapping[str, OqScenario[S]]
    vendor_errors: tuple[type[BaseException], ...] = ()
    changed: Callable[[Mapping[str, Any]], bool] = _has_actions

    @property
    def methods(self) -> tuple[str, ...]:
        return (*self.iq, *self.oq)


def answer_loop(
    table: ObservationTable[S],
    requests: Sequence[Mapping[str, Any]],
    open_session: Callable[[bool], S],
    *,
    run_id: str = "",
    check_mode: bool = False,
    secrets: tuple[str, ...] = (),
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Answer every request in one session: the loop every platform probe shares.

    ``open_session(write)`` connects (``write``: an OQ scenario will run); ``secrets`` are
    scrubbed from a connection failure's message (later ones use the session's). A connection
    failure makes every known method an ``error`` with the one-line reason; an unknown method
    is an ``error`` naming the known ones; an OQ scenario in check mode, or an operation the
    platform cannot perform, is ``not-executed``; a platform failure or bad arguments are an
    ``error``. Nothing here raises for a platform failure. Each observation gets ``seconds``,
    the time answering it took (the session's connection excluded).

    Returns:
        ``({key: observation}, changed)``.

    Raises:
        BadArgs: a request has no key (the call is malformed as a whole).
    """
    write = not check_mode and any(r.get("method") in table.oq for r in requests)
    session: S | None = None
    connect_error: str | None = None
    try:
        session = open_session(write)
    except VqualError as exc:  # PlatformError, or an endpoint the adapter refuses
        connect_error = one_line(exc.one_line(), secrets)
    observations: dict[str, dict[str, Any]] = {}
    changed = False
    try:
        for position, request in enumerate(requests, start=1):
            key, method = str(request.get("key") or ""), str(request.get("method") or "")
            if not key:
                raise BadArgs(f"request for method {method!r} has no key")
            began = time.perf_counter()
            observation = dict(_answer_one(
                table, session, connect_error, request, OqContext(run_id, position), check_mode
            ))
            # This observation's own time, not the call's (docs/formats.md observation_ms).
            observation["seconds"] = round(time.perf_counter() - began, 6)
            observations[key] = observation
            changed = changed or (method in table.oq and table.changed(observations[key]))
    finally:
        if session is not None:
            session.close()
    return observations, changed


def _answer_one(
    table: ObservationTable[S],
    session: S | None,
    connect_error: str | None,
    request: Mapping[str, Any],
    context: OqContext,
    check_mode: bool,
) -> dict[str, Any]:
    method = str(request.get("method") or "")
    args = request.get("args") or {}
    if method not in table.iq and method not in table.oq:
        known = ", ".join(table.methods)
        return probe_observation(
            method=method, error=f"unknown {table.probe} probe method {method!r} (known: {known})"
        )
    if session is None:
        return probe_observation(method=method, error=connect_error)
    if method in table.oq and check_mode:
        return probe_observation(method=method, not_executed="check mode")
    try:
        if not isinstance(args, Mapping):
            raise BadArgs(f"{method}: args must be a mapping")
        if method in table.oq:
            return table.oq[method](session, context, args)
        return table.iq[method](session, args)
    except NotSupported as exc:
        return probe_observation(method=method, not_executed=exc.one_line())
    except (VqualError, BadArgs) as exc:
        text = exc.one_line() if isinstance(exc, VqualError) else str(exc)
        return probe_observation(method=method, error=one_line(text, session.secrets))
    except table.vendor_errors as exc:  # a vendor call not routed through the adapter
        return probe_observation(
            method=method, error=f"{method} failed: {one_line(str(exc), session.secrets)}"
        )


def observations_failed(requests: Sequence[Mapping[str, Any]], error: str) -> dict[str, dict[str, Any]]:
    """Every request answered with the same ``error`` (bad endpoint, malformed call)."""
    return {
        str(r.get("key", "")): probe_observation(method=str(r.get("method", "")), error=error)
        for r in requests
    }
