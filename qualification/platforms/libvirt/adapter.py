"""libvirt adapter: :class:`LibvirtPlatform` implements :class:`HypervisorPlatform` with
libvirt-python, for any libvirt URI (``test:///default``, ``qemu:///system``,
``qemu+ssh://host/system``, ...).

libvirt has one host per connection, no clusters and no maintenance mode. vqual adds its own
markers and honours them in :meth:`LibvirtPlatform.power_on` and
:meth:`LibvirtPlatform.migrate_vm` (a host in maintenance runs no VM: it takes a stopped VM
moved cold, never a running one, and powers nothing on):

- **maintenance**: a JSON file ``<state dir>/platforms/libvirt/maintenance/<host key>.json``
  (host key: the host UUID from the capabilities, else ``host-<hostname>``). It lives in the
  state directory because it must outlive the connection and be seen by every run, and
  libvirt has no host-level metadata.
- **placement**: a domain metadata element
  ``<vqual:placement xmlns:vqual="urn:x-vqual:libvirt:1" allowed-hosts="name-or-uuid ..."/>``
  stored in the domain's persistent definition, so it travels with the domain on migration.

Note for the test driver (``test:///...``): an open re-reads its XML unless another
connection of the same process is still open (those share one state), so nothing persists
from one module call to the next; a whole OQ sequence must run inside one
:class:`LibvirtPlatform`.
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Self, TypeVar

import libvirt

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import (
    CRASHED,
    PAUSED,
    RUNNING,
    STOPPED,
    STOPPING,
    SUSPENDED,
    UNKNOWN,
    ClusterFacts,
    CpuFacts,
    DatastoreFacts,
    EventFacts,
    HostFacts,
    NetworkFacts,
    Placement,
    PlatformAbout,
    SnapshotFacts,
    VmConfig,
    VmFacts,
    VmSummary,
    one_line,
    redact_endpoint,
    secrets_of,
)
from qualification.platforms.libvirt.domain_xml import (
    SNAPSHOT_STATES,
    VQUAL_NS,
    define_xml,
    parse_capabilities,
    quoteattr,
    renamed_definition,
    version_text,
    vm_facts_from_xml,
    vm_summary_from_xml,
)

_NS_PREFIX = "vqual"

_T = TypeVar("_T")

_POWER = {
    libvirt.VIR_DOMAIN_NOSTATE: UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,  # running, waiting on a resource
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: STOPPING,
    libvirt.VIR_DOMAIN_SHUTOFF: STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}
_UNSUPPORTED_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_SUPPORT,
        libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
        libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
    }
)
# Domain types the adapter prefers for throwaway domains when none is configured.
_DOMAIN_TYPE_ORDER = ("kvm", "qemu", "test")


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; errors reach callers as exceptions."""


libvirt.registerErrorHandler(_quiet, None)


def default_state_dir() -> Path:
    """The state directory as docs/formats.md defines it, without a ``--state-dir``."""
    env = os.environ.get("VQUAL_STATE_DIR")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "vqual"


def _utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LibvirtPlatform:
    """One libvirt connection, as a :class:`~qualification.platforms.base.HypervisorPlatform`.

    Args:
        uri: libvirt URI. Keep credentials out of it (use SSH keys, TLS certificates or
            libvirt's auth file); any password in it is still removed from every message.
        readonly: open read-only (IQ); operations then fail with PlatformError.
        state_dir: vqual's state directory (maintenance markers); default as in formats.md.
        domain_type: domain type for VMs created from a :class:`VmConfig` (``qemu`` for
            TCG labs); default the first of kvm, qemu, test the host offers.
    """

    platform = "libvirt"

    def __init__(self, uri: str, *, readonly: bool = False, state_dir: Path | str | None = None,
                 domain_type: str | None = None) -> None:
        self.uri = uri
        self.endpoint = redact_endpoint(uri)
        self._secrets = secrets_of(uri)
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._domain_type = domain_type
        self._identity: tuple[str, str | None] | None = None
        self._caps: dict[str, Any] | None = None
        try:
            conn = libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise PlatformError(
                f"connect failed: {one_line(str(exc), self._secrets)}", where=self.endpoint
            ) from None
        if conn is None:  # old bindings returned None instead of raising
            raise PlatformError("connect failed: no connection", where=self.endpoint)
        self.conn: libvirt.virConnect = conn

    # -- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass  # closing a dead connection: nothing left to release

    def _call(self, operation: str, target: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one libvirt call; its error becomes a one-line PlatformError or NotSupported."""
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            message = one_line(str(exc), self._secrets)
            if exc.get_error_code() in _UNSUPPORTED_CODES:
                raise NotSupported(
                    f"{operation} {target}".strip(), message, where=self.endpoint
                ) from None
            raise PlatformError(
                f"{operation} {target} failed: {message}".replace("  ", " "), where=self.endpoint
            ) from None

    def _domain(self, name: str) -> libvirt.virDomain:
        return self._call("lookup vm", name, self.conn.lookupByName, name)

    # -- facts ------------------------------------------------------------------------------

    def about(self) -> PlatformAbout:
        return PlatformAbout(
            platform=self.platform,
            product=str(self._call("read", "hypervisor type", self.conn.getType)),
            version=version_text(self._call("read", "hypervisor version", self.conn.getVersion)),
            api_version=version_text(self._call("read", "library version",
                                                self.conn.getLibVersion)),
            endpoint=self.endpoint,
        )

    def capabilities_xml(self) -> str:
        return str(self._call("read", "capabilities", self.conn.getCapabilities))

    def capabilities(self) -> dict[str, Any]:
        if self._caps is None:
            self._caps = parse_capabilities(self.capabilities_xml())
        return self._caps

    def node_info(self) -> dict[str, Any]:
        """``virNodeGetInfo`` with named fields (``virsh nodeinfo``)."""
        model, memory_mib, cpus, mhz, nodes, sockets, cores, threads = self._call(
            "read", "node info", self.conn.getInfo
        )
        return {
            "cpu_model": model,
            "memory_mib": memory_mib,
            "cpus": cpus,
            "mhz": mhz,
            "numa_nodes": nodes,
            "sockets_per_node": sockets,
            "cores_per_socket": cores,
            "threads_per_core": threads,
        }

    def hostname(self) -> str:
        return str(self._call("read", "hostname", self.conn.getHostname))

    def security_model(self) -> dict[str, str]:
        model, doi = self._call("read", "security model", self.conn.getSecurityModel)
        return {"model": model, "doi": doi}

    def sysinfo(self) -> dict[str, dict[str, str]]:
        """SMBIOS tables the hypervisor reports (``virsh sysinfo``); {} where there are none.

        A driver without the call, and a host without SMBIOS tables (QEMU in a container or
        chroot: "Host SMBIOS information is not available"), both give {}.
        """
        try:
            xml = self.conn.getSysinfo(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in _UNSUPPORTED_CODES | {libvirt.VIR_ERR_CONFIG_UNSUPPORTED}:
                return {}
            raise PlatformError(
                f"read sysinfo failed: {one_line(str(exc), self._secrets)}", where=self.endpoint
            ) from None
        root = ET.fromstring(xml)
        out: dict[str, dict[str, str]] = {}
        for section in root:
            entries = {e.get("name", ""): (e.text or "").strip() for e in section.iter("entry")}
            if entries:
                out[section.tag] = entries
        return out

    def _host_identity(self) -> tuple[str, str | None]:
        if self._identity is None:
            self._identity = (self.hostname(), self.capabilities()["host"]["uuid"])
        return self._identity

    def host_key(self) -> str:
        """The key of this host's maintenance marker: its UUID, else ``host-<hostname>``."""
        name, uuid = self._host_identity()
        key = uuid or f"host-{name}"
        return re.sub(r"[^A-Za-z0-9._-]", "_", key)

    def maintenance_marker(self) -> Path:
        state = self._state_dir if self._state_dir is not None else default_state_dir()
        return state / "platforms" / "libvirt" / "maintenance" / f"{self.host_key()}.json"

    def hosts(self) -> list[HostFacts]:
        return [self.host()]

    def host(self, name: str | None = None) -> HostFacts:
        hostname, uuid = self._host_identity()
        if name is not None and name not in (hostname, uuid):
            raise PlatformError(
                f"host {name} is not the host of this connection ({hostname})",
                where=self.endpoint,
            )
        info = self.node_info()
        caps = self.capabilities()
        about = self.about()
        sysinfo = self.sysinfo()
        system = sysinfo.get("system", {})
        return HostFacts(
            name=hostname,
            uuid=uuid,
            cpu=CpuFacts(
                model=caps["host"]["cpu_model"] or info["cpu_model"],
                arch=caps["host"]["arch"] or info["cpu_model"],
                vendor=caps["host"]["cpu_vendor"],
                count=info["cpus"],
                mhz=info["mhz"],
                sockets=info["sockets_per_node"] * info["numa_nodes"],
                cores_per_socket=info["cores_per_socket"],
                threads_per_core=info["threads_per_core"],
                features=tuple(caps["host"]["features"]),
            ),
            memory_mib=info["memory_mib"],
            numa_nodes=info["numa_nodes"],
            hardware={
                k: system[k] for k in ("manufacturer", "product", "serial", "uuid") if k in system
            },
            firmware=dict(sysinfo.get("bios", {})),
            software={
                "hypervisor": about.product,
                "hypervisor_version": about.version,
                "libvirt_version": about.api_version,
            },
            security_models=tuple(m for m in caps["host"]["secmodels"] if m),
            in_maintenance=self.maintenance_marker().exists(),
            cluster=None,
        )

    def clusters(self) -> list[ClusterFacts]:
        raise NotSupported(
            "clusters",
            "libvirt has no cluster object; clusters of libvirt hosts are defined in the inventory",
            where=self.endpoint,
        )

    def datastores(self) -> list[DatastoreFacts]:
        out = []
        for pool in self._call("list", "storage pools", self.conn.listAllStoragePools, 0):
            root = ET.fromstring(self._call("read pool", pool.name(), pool.XMLDesc, 0))
            _state, capacity, allocation, available = self._call(
                "read pool", pool.name(), pool.info
            )
            out.append(
                DatastoreFacts(
                    name=pool.name(),
                    kind=root.get("type", ""),
                    active=bool(self._call("read pool", pool.name(), pool.isActive)),
                    persistent=bool(self._call("read pool", pool.name(), pool.isPersistent)),
                    autostart=bool(self._call("read pool", pool.name(), pool.autostart)),
                    capacity_bytes=capacity,
                    allocation_bytes=allocation,
                    available_bytes=available,
                    path=root.findtext("target/path"),
                )
            )
        return out

    def networks(self) -> list[NetworkFacts]:
        out = []
        for net in self._call("list", "networks", self.conn.listAllNetworks, 0):
            root = ET.fromstring(self._call("read network", net.name(), net.XMLDesc, 0))
            forward = root.find("forward")
            bridge = root.find("bridge")
            out.append(
                NetworkFacts(
                    name=net.name(),
                    active=bool(self._call("read network", net.name(), net.isActive)),
                    persistent=bool(self._call("read network", net.name(), net.isPersistent)),
                    autostart=bool(self._call("read network", net.name(), net.autostart)),
                    bridge=bridge.get("name") if bridge is not None else None,
                    forward_mode=(forward.get("mode") or "nat") if forward is not None else None,
                )
            )
        return out

    def _facts(self, dom: libvirt.virDomain) -> VmFacts:
        name = dom.name()
        state, _reason = self._call("read vm", name, dom.state, 0)
        try:
            autostart = bool(self._call("read vm", name, dom.autostart))
        except NotSupported:
            autostart = False
        persistent = bool(self._call("read vm", name, dom.isPersistent))
        return vm_facts_from_xml(
            self._call("read vm", name, dom.XMLDesc, 0),
            host=self._host_identity()[0],
            power_state=_POWER.get(state, UNKNOWN),
            persistent=persistent,
            autostart=autostart,
            snapshots=tuple(self._call("read vm", name, dom.snapshotListNames, 0)),
            config_xml=self._call("read vm", name, dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE),
        )

    def vms(self) -> list[VmFacts]:
        domains = self._call("list", "vms", self.conn.listAllDomains, 0)
        return [self._facts(d) for d in sorted(domains, key=lambda d: d.name())]

    def vm_summaries(self) -> list[VmSummary]:
        """Every VM's live XML and state only: no snapshots, inactive XML or autostart."""
        host = self._host_identity()[0]
        out = []
        for dom in sorted(self._call("list", "vms", self.conn.listAllDomains, 0),
                          key=lambda d: d.name()):
            state, _reason = self._call("read vm", dom.name(), dom.state, 0)
            out.append(vm_summary_from_xml(self._call("read vm", dom.name(), dom.XMLDesc, 0),
                                           host=host, power_state=_POWER.get(state, UNKNOWN)))
        return out

    def vm(self, name: str) -> VmFacts:
        return self._facts(self._domain(name))

    def vm_xml(self, name: str, *, inactive: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return str(self._call("read vm", name, self._domain(name).XMLDesc, flags))

    def vm_exists(self, name: str) -> bool:
        try:
            self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise PlatformError(
                f"lookup vm {name} failed: {one_line(str(exc), self._secrets)}", where=self.endpoint
            ) from None
        return True

    # -- operations -------------------------------------------------------------------------

    def _pick_domain_type(self, os_type: str, arch: str) -> str:
        offered = {
            t
            for g in self.capabilities()["guests"]
            if g["os_type"] == os_type and g["arch"] == arch
            for t in g["domain_types"]
        }
        if self._domain_type is not None:
            if self._domain_type not in offered:
                raise PlatformError(
                    f"domain type {self._domain_type} is not offered for {os_type}/{arch} "
                    f"(offered: {', '.join(sorted(offered)) or 'none'})",
                    where=self.endpoint,
                )
            return str(self._domain_type)
        for candidate in _DOMAIN_TYPE_ORDER:
            if candidate in offered:
                return candidate
        if offered:
            return str(min(offered))
        raise NotSupported(
            "create vm", f"host offers no guest of type {os_type} on {arch}", where=self.endpoint
        )

    def config_xml(self, config: VmConfig, *, disk_path: str | None = None) -> str:
        """The domain XML a :class:`VmConfig` defines (``native`` as given, if set).

        ``disk_path`` adds it as a qcow2 virtio disk ``vda``.
        """
        if config.native is not None:
            return config.native
        arch = config.arch or self.capabilities()["host"]["arch"]
        dtype = self._pick_domain_type(config.os_type, arch)
        return define_xml(config, arch=arch, domain_type=dtype, disk_path=disk_path)

    def _disk_pool(self, name: str | None) -> libvirt.virStoragePool | None:
        """The pool for a new VM's disk: the named one, else the first active one, else None."""
        if name is not None:
            pool = self._call("lookup pool", name, self.conn.storagePoolLookupByName, name)
            if not self._call("read pool", name, pool.isActive):
                raise PlatformError(f"storage pool {name} is not active", where=self.endpoint)
            return pool
        pools = self._call("list", "storage pools", self.conn.listAllStoragePools, 0)
        for pool in sorted(pools, key=lambda p: p.name()):
            if self._call("read pool", pool.name(), pool.isActive):
                return pool
        return None

    def create_vm(self, config: VmConfig) -> VmFacts:
        """Define a VM; with ``disk_mib`` a qcow2 volume ``<name>-vda.qcow2`` is made for it in
        ``config.pool`` (else the first active pool). Without any active pool the VM is
        defined without a disk.
        """
        if self.vm_exists(config.name):
            raise PlatformError(
                f"create vm {config.name} refused: it already exists", where=self.endpoint
            )
        volume = None
        disk_path = None
        if config.native is None and config.disk_mib > 0:
            pool = self._disk_pool(config.pool)
            if pool is not None:
                vol_xml = (
                    f"<volume><name>{escape(config.name)}-vda.qcow2</name>"
                    f"<capacity unit='MiB'>{int(config.disk_mib)}</capacity>"
                    "<target><format type='qcow2'/></target></volume>"
                )
                volume = self._call("create disk of", config.name, pool.createXML, vol_xml, 0)
                disk_path = str(self._call("read disk of", config.name, volume.path))
        try:
            dom = self._call(
                "define vm",
                config.name,
                self.conn.defineXML,
                self.config_xml(config, disk_path=disk_path),
            )
        except PlatformError:
            if volume is not None:
                self._call("delete disk of", config.name, volume.delete, 0)
            raise
        return self._facts(dom)

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        dom = self._domain(name)
        if self._call("read vm", name, dom.isActive):
            raise PlatformError(f"delete vm {name} refused: it is running", where=self.endpoint)
        facts = self._facts(dom)
        flags = (
            libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        )
        if facts.firmware == "efi":
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        self._call("undefine vm", name, dom.undefineFlags, flags)
        if not delete_storage:
            return
        for disk in facts.disks:
            if disk.device != "disk" or not disk.source:
                continue
            try:
                volume = self.conn.storageVolLookupByPath(disk.source)
            except libvirt.libvirtError:
                continue  # not a libvirt volume: libvirt cannot delete it, leave it
            self._call(f"delete disk {disk.source} of", name, volume.delete, 0)

    def _refuse_if_not_placeable(
        self, operation: str, vm: str, placement: Placement, *, running: bool = True
    ) -> None:
        """Refuse to place ``vm`` here: a host in maintenance runs nothing, placement rules.

        ``running=False`` is a stopped VM moved cold (defined here, not started): a host in
        maintenance takes it, as vSphere lets a powered-off VM onto a host in maintenance
        mode; it still cannot be powered on here (``power_on`` refuses).
        """
        marker = self.maintenance_marker()
        hostname = self._host_identity()[0]
        if marker.exists() and running:
            raise PlatformError(
                f"{operation} {vm} refused: host {hostname} is in maintenance mode "
                f"(vqual marker {marker})",
                where=self.endpoint,
            )
        if not placement.allows(self._placement_host()):
            raise PlatformError(
                f"{operation} {vm} refused: placement allows only "
                f"{', '.join(placement.allowed_hosts)}, not {hostname}",
                where=self.endpoint,
            )

    def _placement_host(self) -> HostFacts:
        # Only name and UUID matter for placement: no need to read node info and sysinfo.
        name, uuid = self._host_identity()
        return HostFacts(
            name=name,
            uuid=uuid,
            cpu=CpuFacts("", "", None, 0, 0, 0, 0, 0),
            memory_mib=0,
            numa_nodes=0,
        )

    def power_on(self, name: str) -> VmFacts:
        dom = self._domain(name)
        facts = self._facts(dom)
        if facts.power_state == RUNNING:
            return facts
        self._refuse_if_not_placeable("power on", name, facts.placement)
        self._call("start vm", name, dom.create)
        return self._facts(dom)

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        dom = self._domain(name)
        if not self._call("read vm", name, dom.isActive):
            return self._facts(dom)
        if not graceful:
            self._call("stop vm", name, dom.destroy)
            return self._facts(dom)
        self._call("shut down vm", name, dom.shutdown)
        deadline = time.monotonic() + timeout_s
        while self._call("read vm", name, dom.isActive):
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"shut down vm {name} failed: guest still running after {timeout_s:g} s",
                    where=self.endpoint,
                )
            time.sleep(0.2)
        return self._facts(dom)

    def _snapshot_facts(self, vm: str, snap: libvirt.virDomainSnapshot) -> SnapshotFacts:
        root = ET.fromstring(self._call("read snapshot", vm, snap.getXMLDesc, 0))
        created = root.findtext("creationTime")
        return SnapshotFacts(
            name=snap.getName(),
            vm=vm,
            power_state=SNAPSHOT_STATES.get(root.findtext("state") or "", UNKNOWN),
            current=bool(self._call("read snapshot", vm, snap.isCurrent, 0)),
            created=int(created) if created else None,
        )

    def snapshots(self, vm: str) -> list[SnapshotFacts]:
        dom = self._domain(vm)
        snaps = self._call("list snapshots of", vm, dom.listAllSnapshots, 0)
        return [self._snapshot_facts(vm, s) for s in sorted(snaps, key=lambda s: s.getName())]

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        dom = self._domain(vm)
        xml = (
            f"<domainsnapshot><name>{escape(name)}</name>"
            f"<description>{escape(description)}</description></domainsnapshot>"
        )
        snap = self._call("create snapshot of", vm, dom.snapshotCreateXML, xml, 0)
        return self._snapshot_facts(vm, snap)

    def _snapshot(self, vm: str, name: str) -> tuple[libvirt.virDomain, libvirt.virDomainSnapshot]:
        dom = self._domain(vm)
        return dom, self._call(f"lookup snapshot {name} of", vm, dom.snapshotLookupByName, name, 0)

    def snapshot_revert(self, vm: str, name: str) -> VmFacts:
        dom, snap = self._snapshot(vm, name)
        self._call(f"revert to snapshot {name} of", vm, dom.revertToSnapshot, snap, 0)
        return self._facts(dom)

    def snapshot_delete(self, vm: str, name: str) -> None:
        _dom, snap = self._snapshot(vm, name)
        self._call(f"delete snapshot {name} of", vm, snap.delete, 0)

    def clone_vm(self, source: str, name: str) -> VmFacts:
        """Copy a stopped VM's definition under a new name, UUID and MAC addresses.

        Disks that are libvirt storage volumes are copied into the same pool as
        ``<name>-<target>``; a disk that is not a volume cannot be copied by libvirt, so the
        clone raises NotSupported rather than share the source's disk.
        """
        dom = self._domain(source)
        if self._call("read vm", source, dom.isActive):
            raise PlatformError(f"clone vm {source} refused: it is running", where=self.endpoint)
        if self.vm_exists(name):
            raise PlatformError(
                f"clone vm {source} refused: {name} already exists", where=self.endpoint
            )
        root = renamed_definition(self.vm_xml(source, inactive=True), name)
        copies: list[tuple[libvirt.virStoragePool, str, libvirt.virStorageVol]] = []
        for disk in root.findall("devices/disk"):
            src = disk.find("source")
            path = src.get("file") if src is not None else None
            if disk.get("device", "disk") != "disk" or not path:
                continue
            try:
                vol = self.conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                raise NotSupported(
                    f"clone vm {source}",
                    f"disk {path} is not a libvirt storage volume, so it cannot be copied",
                    where=self.endpoint,
                ) from None
            target = disk.find("target")
            new_name = f"{name}-{target.get('dev') if target is not None else 'disk'}"
            copies.append(
                (self._call("find pool of", path, vol.storagePoolLookupByVolume), new_name, vol)
            )
            src.set("file", str(Path(path).with_name(new_name)))  # type: ignore[union-attr]
        for pool, new_name, vol in copies:
            vol_root = ET.fromstring(self._call("read volume", vol.name(), vol.XMLDesc, 0))
            vol_root.find("name").text = new_name  # type: ignore[union-attr]
            for key in vol_root.findall("key"):
                vol_root.remove(key)
            new_vol = self._call(
                "copy volume",
                vol.name(),
                pool.createXMLFrom,
                ET.tostring(vol_root, "unicode"),
                vol,
                0,
            )
            # The pool may place the copy elsewhere than the source's directory.
            for disk in root.findall("devices/disk"):
                s = disk.find("source")
                if s is not None and s.get("file", "").endswith("/" + new_name):
                    s.set("file", str(self._call("read volume", new_name, new_vol.path)))
        clone = self._call("define vm", name, self.conn.defineXML, ET.tostring(root, "unicode"))
        return self._facts(clone)

    def migrate_vm(
        self,
        name: str,
        destination: str,
        *,
        live: bool = True,
        dest_xml: str | None = None,
        persist_xml: str | None = None,
        unsafe: bool = False,
    ) -> VmFacts:
        """Migrate to another libvirt host, given as its URI; the VM stays defined there only.

        The destination's maintenance marker and the VM's placement are honoured before
        anything moves: a host in maintenance takes only a stopped VM (a cold move, as the
        rolling patch's OQ canary needs). ``dest_xml`` replaces the domain XML on the destination (e.g. to move
        a port forward that would clash on the same machine). ``unsafe`` passes
        ``VIR_MIGRATE_UNSAFE``: storage shared in a way libvirt does not recognise (a bind
        mount of one directory, as in the lab); a site decision, off by default.
        ``persist_xml`` is the definition the destination keeps (default: the running one),
        so a temporary change in ``dest_xml`` never becomes the persistent definition.
        """
        dom = self._domain(name)
        facts = self._facts(dom)
        dest = LibvirtPlatform(
            destination, state_dir=self._state_dir, domain_type=self._domain_type
        )
        try:
            dest._refuse_if_not_placeable(
                "migrate", name, facts.placement, running=facts.power_state != STOPPED
            )
            flags = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
            if facts.power_state == RUNNING and live:
                flags |= libvirt.VIR_MIGRATE_LIVE
            elif facts.power_state == STOPPED:
                flags |= libvirt.VIR_MIGRATE_OFFLINE
            if unsafe:
                flags |= libvirt.VIR_MIGRATE_UNSAFE
            target = f"{name} to {dest.endpoint}"
            if persist_xml is not None:
                params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: persist_xml}
                if dest_xml is not None:
                    params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = dest_xml
                migrated = self._call("migrate", target, dom.migrate3, dest.conn, params, flags)
            elif dest_xml is None:
                migrated = self._call(
                    "migrate", target, dom.migrate, dest.conn, flags, None, None, 0
                )
            else:
                migrated = self._call(
                    "migrate", target, dom.migrate2, dest.conn, dest_xml, flags, None, None, 0
                )
            return dest._facts(migrated)
        finally:
            dest.close()

    def placement(self, vm: str) -> Placement:
        return self.vm(vm).placement

    def set_placement(self, vm: str, placement: Placement) -> VmFacts:
        dom = self._domain(vm)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._call("read vm", vm, dom.isActive):
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        args: tuple[str | None, str | None]
        if placement.allowed_hosts:  # set the element
            xml = f"<placement allowed-hosts={quoteattr(' '.join(placement.allowed_hosts))}/>"
            operation, args = "set placement of", (xml, _NS_PREFIX)
        else:  # no element, no prefix: libvirt removes it
            operation, args = "clear placement of", (None, None)
        self._call(operation, vm, dom.setMetadata, libvirt.VIR_DOMAIN_METADATA_ELEMENT, *args,
                   VQUAL_NS, flags)
        return self._facts(dom)

    def enter_maintenance(self, host: str | None = None, *, run_id: str | None = None) -> HostFacts:
        """Mark the host as in maintenance; refused while VMs run on it (migrate them first).

        ``run_id`` is written into the marker, so what a killed run left marked can be found.
        """
        if host is not None:
            self._check_host(host)
        running = sorted(v.name for v in self.vms() if v.power_state in (RUNNING, PAUSED, STOPPING))
        if running:
            raise PlatformError(
                f"enter maintenance on {self._host_identity()[0]} refused: VMs still running: "
                + ", ".join(running),
                where=self.endpoint,
            )
        marker = self.maintenance_marker()
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            name, uuid = self._host_identity()
            body: dict[str, Any] = {
                "host": name, "uuid": uuid, "endpoint": self.endpoint, "since": _utcnow()
            }
            if run_id is not None:
                body["run_id"] = run_id
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
            os.replace(tmp, marker)  # atomic: a reader never sees half a marker
        return self.host()

    def exit_maintenance(self, host: str | None = None) -> HostFacts:
        if host is not None:
            self._check_host(host)
        self.maintenance_marker().unlink(missing_ok=True)
        return self.host()

    def _check_host(self, host: str) -> None:
        hostname, uuid = self._host_identity()
        if host not in (hostname, uuid):
            raise PlatformError(
                f"host {host} is not the host of this connection ({hostname})", where=self.endpoint
            )

    def events(self, since: datetime | None = None) -> list[EventFacts]:
        raise NotSupported(
            "events",
            "libvirt keeps no event history; events reach only a connection listening when "
            "they happen",
            where=self.endpoint,
        )
