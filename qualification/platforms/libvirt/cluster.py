"""Several libvirt hosts as one :class:`HypervisorPlatform`: a KVM cluster from the inventory.

libvirt has one host per connection and no cluster object; a KVM cluster is the inventory's
hosts with the same ``vqual_cluster``. :class:`LibvirtCluster` holds one
:class:`~qualification.platforms.libvirt.adapter.LibvirtPlatform` per host and answers for all of
them: ``hosts()`` and ``vms()`` span the cluster, hosts are named as in the inventory, and
``migrate_vm(name, destination)`` takes a host name. Operations on one VM go to the host that
holds it; maintenance goes to the named host (vqual's marker, see the libvirt adapter).

A member whose daemon restarted (a patch restarts libvirtd) has a dead connection: a cheap
call before each use finds that out and the connection is opened again. That is a new
connection before the operation, not a retried operation.

Migration options for hosts that share one machine (the lab):

- ``unsafe_migration``: libvirt refuses a live migration "without shared storage" unless it
  recognises the file system as shared (NFS, GFS2, Ceph, ...); a bind mount of one directory
  is not recognised. ``VIR_MIGRATE_UNSAFE`` is then a site decision.
- ``forward_offset``: guests with QEMU user-mode networking port forwards
  (``hostfwd=tcp:<address>:<port>-:<guest port>`` in ``<qemu:commandline>``) would bind the
  same address and port on the destination while the source still holds it. The destination
  XML binds ``port + offset``; once the migration is done the running guest's forwards are
  moved back through the QEMU monitor (``hostfwd_remove``/``hostfwd_add``) and its persistent
  definition gets the original forwards again, so the guest keeps its address and port.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import libvirt

from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import (
    RUNNING,
    ClusterFacts,
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
)
from qualification.platforms.libvirt.adapter import LibvirtPlatform

_QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_HOSTFWD = re.compile(r"hostfwd=(?P<proto>tcp|udp):(?P<addr>[^:,]*):(?P<port>\d+)-(?P<guest>[^,]*)")
_NETDEV_ID = re.compile(r"(?:^|,)id=(?P<id>[^,]+)")


def forwards(xml: str) -> list[tuple[str, str, str, int, str]]:
    """User-mode forwards in a domain's ``<qemu:commandline>``:
    ``[(netdev id, proto, address, host port, guest part)]``."""
    out = []
    root = ET.fromstring(xml)
    for arg in root.iter(f"{{{_QEMU_NS}}}arg"):
        value = arg.get("value", "")
        if "hostfwd=" not in value:
            continue
        found = _NETDEV_ID.search(value.split("hostfwd=", 1)[0])
        netdev = found.group("id") if found else ""
        for m in _HOSTFWD.finditer(value):
            out.append((netdev, m["proto"], m["addr"], int(m["port"]), m["guest"]))
    return out


def shift_forwards(xml: str, offset: int) -> str:
    """``xml`` with every user-mode forward's host port moved by ``offset``."""

    def move(m: re.Match[str]) -> str:
        return f"hostfwd={m['proto']}:{m['addr']}:{int(m['port']) + offset}-{m['guest']}"

    # Text substitution keeps the rest of the XML byte for byte (namespaces included).
    return re.sub(
        r"(<qemu:arg value=['\"][^'\"]*)",
        lambda a: _HOSTFWD.sub(move, a.group(1)),
        xml,
    )


class LibvirtCluster:
    """A KVM cluster: one libvirt connection per host, one platform for all of them.

    Args:
        hosts: host name -> libvirt URI (the inventory's ``vqual_libvirt_uri``).
        cluster: the cluster's name (the inventory's ``vqual_cluster``).
        state_dir: vqual's state directory (maintenance markers).
        unsafe_migration: migrate with ``VIR_MIGRATE_UNSAFE`` (see the module docstring).
        forward_offset: move user-mode port forwards during a migration (see above).
    """

    platform = "libvirt"

    def __init__(
        self,
        hosts: Mapping[str, str],
        *,
        cluster: str,
        state_dir: Path | str | None = None,
        domain_type: str | None = None,
        unsafe_migration: bool = False,
        forward_offset: int | None = None,
    ) -> None:
        if not hosts:
            raise BadInputError(f"libvirt cluster {cluster}: no hosts")
        self.uris = dict(sorted(hosts.items()))
        self.cluster = cluster
        self.state_dir = state_dir
        self.domain_type = domain_type
        self.unsafe_migration = unsafe_migration
        self.forward_offset = forward_offset
        self.endpoint = ", ".join(redact_endpoint(u) for u in self.uris.values())
        self._members: dict[str, LibvirtPlatform] = {}

    @classmethod
    def from_hostvars(
        cls,
        hostvars: Mapping[str, Mapping[str, Any]],
        cluster: str,
        *,
        state_dir: Path | str | None = None,
    ) -> LibvirtCluster:
        """The cluster's hosts from ``ansible-inventory --list`` host variables: hosts whose
        ``vqual_cluster`` is ``cluster`` and that have a ``vqual_libvirt_uri``.
        ``vqual_libvirt_unsafe_migration`` and ``vqual_libvirt_forward_offset`` (same on
        every host) set the migration options.

        Raises:
            BadInputError: no such host, a URI is not plain text, or the options differ.
        """
        members = {
            name: v
            for name, v in sorted(hostvars.items())
            if v.get("vqual_cluster") == cluster and v.get("vqual_libvirt_uri")
        }
        if not members:
            raise BadInputError(
                f"inventory: no libvirt host with vqual_cluster {cluster!r} and a vqual_libvirt_uri"
            )
        uris: dict[str, str] = {}
        for name, v in members.items():
            uri = v["vqual_libvirt_uri"]
            if not isinstance(uri, str) or "{{" in uri:
                raise BadInputError(f"inventory host {name}: vqual_libvirt_uri is not a plain URI")
            uris[name] = uri
        unsafe = {bool(v.get("vqual_libvirt_unsafe_migration", False)) for v in members.values()}
        offsets = {v.get("vqual_libvirt_forward_offset") for v in members.values()}
        if len(unsafe) != 1 or len(offsets) != 1:
            raise BadInputError(
                f"inventory: hosts of cluster {cluster} differ in their migration options"
            )
        offset = offsets.pop()
        if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)):
            raise BadInputError(
                f"inventory: vqual_libvirt_forward_offset of cluster {cluster} is not a number"
            )
        return cls(
            uris,
            cluster=cluster,
            state_dir=state_dir,
            unsafe_migration=unsafe.pop(),
            forward_offset=offset,
        )

    # -- members ----------------------------------------------------------------------------

    def member(self, host: str) -> LibvirtPlatform:
        """The connection to one host, opened (again, if its daemon restarted) on demand."""
        if host not in self.uris:
            raise PlatformError(
                f"host {host} is not in cluster {self.cluster} ({', '.join(self.uris)})",
                where=self.endpoint,
            )
        current = self._members.get(host)
        if current is not None:
            # isAlive() still says yes for a while after the daemon went away (keepalive has
            # not noticed): one cheap call tells for sure.
            try:
                current.conn.getLibVersion()
                alive = True
            except libvirt.libvirtError:
                alive = False
            if alive:
                return current
            current.close()
            del self._members[host]
        fresh = LibvirtPlatform(
            self.uris[host], state_dir=self.state_dir, domain_type=self.domain_type
        )
        self._members[host] = fresh
        return fresh

    def _host_name(self, host: str | None) -> str:
        if host is None:
            if len(self.uris) != 1:
                raise PlatformError(
                    f"name a host: cluster {self.cluster} has {len(self.uris)}",
                    where=self.endpoint,
                )
            return next(iter(self.uris))
        if host in self.uris:
            return host
        for name, uri in self.uris.items():
            if host == uri:
                return name
        raise PlatformError(
            f"host {host} is not in cluster {self.cluster} ({', '.join(self.uris)})",
            where=self.endpoint,
        )

    def _named(self, host: str, facts: HostFacts) -> HostFacts:
        return replace(facts, name=host, cluster=self.cluster)

    def _vm_named(self, host: str, facts: VmFacts) -> VmFacts:
        return replace(facts, host=host)

    def where(self, vm: str) -> str:
        """The host a VM is defined on (the one it runs on, if it is defined on several)."""
        found: list[tuple[str, VmFacts]] = []
        for host in self.uris:
            member = self.member(host)
            if member.vm_exists(vm):
                found.append((host, member.vm(vm)))
        if not found:
            raise PlatformError(
                f"vm {vm!r} not found in cluster {self.cluster}", where=self.endpoint
            )
        running = [h for h, f in found if f.power_state == RUNNING]
        return running[0] if running else found[0][0]

    # -- facts ------------------------------------------------------------------------------

    def about(self) -> PlatformAbout:
        first = self.member(next(iter(self.uris))).about()
        return replace(first, endpoint=self.endpoint)

    def hosts(self) -> list[HostFacts]:
        return [self._named(h, self.member(h).host()) for h in self.uris]

    def host(self, name: str | None = None) -> HostFacts:
        host = self._host_name(name)
        return self._named(host, self.member(host).host())

    def clusters(self) -> list[ClusterFacts]:
        return [ClusterFacts(name=self.cluster, hosts=tuple(self.uris))]

    def datastores(self) -> list[DatastoreFacts]:
        seen: dict[str, DatastoreFacts] = {}
        for host in self.uris:
            for store in self.member(host).datastores():
                seen.setdefault(store.name, store)
        return sorted(seen.values(), key=lambda s: s.name)

    def networks(self) -> list[NetworkFacts]:
        seen: dict[str, NetworkFacts] = {}
        for host in self.uris:
            for net in self.member(host).networks():
                seen.setdefault(net.name, net)
        return sorted(seen.values(), key=lambda n: n.name)

    def vms(self) -> list[VmFacts]:
        """Every VM of every host; a VM defined on two hosts (the moment a migration
        switches over) is listed once, where it runs."""
        found: dict[str, VmFacts] = {}
        for host in self.uris:
            for vm in self.member(host).vms():
                named = self._vm_named(host, vm)
                if vm.name not in found or named.power_state == RUNNING:
                    found[vm.name] = named
        return [found[n] for n in sorted(found)]

    def vm_summaries(self) -> list[VmSummary]:
        """:meth:`vms`, light (each member's ``vm_summaries``), named by cluster host."""
        found: dict[str, VmSummary] = {}
        for host in self.uris:
            for vm in self.member(host).vm_summaries():
                named = replace(vm, host=host)
                if vm.name not in found or named.power_state == RUNNING:
                    found[vm.name] = named
        return [found[n] for n in sorted(found)]

    def vm(self, name: str) -> VmFacts:
        host = self.where(name)
        return self._vm_named(host, self.member(host).vm(name))

    def vm_exists(self, name: str) -> bool:
        return any(self.member(h).vm_exists(name) for h in self.uris)

    # -- operations on one VM go to its host -----------------------------------------------

    def create_vm(self, config: VmConfig) -> VmFacts:
        raise NotSupported(
            "create vm",
            "a cluster has no default host for a new VM; create it on one host "
            "(LibvirtCluster.member(host))",
            where=self.endpoint,
        )

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        self.member(self.where(name)).delete_vm(name, delete_storage=delete_storage)

    def power_on(self, name: str) -> VmFacts:
        host = self.where(name)
        return self._vm_named(host, self.member(host).power_on(name))

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        host = self.where(name)
        return self._vm_named(
            host, self.member(host).power_off(name, graceful=graceful, timeout_s=timeout_s)
        )

    def snapshots(self, vm: str) -> list[SnapshotFacts]:
        return self.member(self.where(vm)).snapshots(vm)

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        return self.member(self.where(vm)).snapshot_create(vm, name, description=description)

    def snapshot_revert(self, vm: str, name: str) -> VmFacts:
        host = self.where(vm)
        return self._vm_named(host, self.member(host).snapshot_revert(vm, name))

    def snapshot_delete(self, vm: str, name: str) -> None:
        self.member(self.where(vm)).snapshot_delete(vm, name)

    def clone_vm(self, source: str, name: str) -> VmFacts:
        host = self.where(source)
        return self._vm_named(host, self.member(host).clone_vm(source, name))

    def placement(self, vm: str) -> Placement:
        return self.vm(vm).placement

    def set_placement(self, vm: str, placement: Placement) -> VmFacts:
        host = self.where(vm)
        return self._vm_named(host, self.member(host).set_placement(vm, placement))

    def migrate_vm(self, name: str, destination: str, *, live: bool = True) -> VmFacts:
        """Move a VM to host ``destination`` (a host name of the cluster, or its URI).

        The destination's maintenance marker and the VM's placement are honoured by the
        adapter before anything moves; the returned facts are read from the destination.
        """
        dest = self._host_name(destination)
        source = self.where(name)
        if source == dest:
            return self.vm(name)
        src = self.member(source)
        dom = src._domain(name)
        dest_xml = None
        persist_xml = None
        originals: list[tuple[str, str, str, int, str]] = []
        if self.forward_offset and src.vm(name).power_state == RUNNING:
            xml = str(src._call("read vm", name, dom.XMLDesc, libvirt.VIR_DOMAIN_XML_MIGRATABLE))
            # The persistent definition holds the guest's own forwards (the destination is
            # given it as its persistent definition, below); the live XML may still name
            # shifted ones if a run was killed before it moved them back.
            persist_xml = str(
                src._call(
                    "read vm",
                    name,
                    dom.XMLDesc,
                    libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_MIGRATABLE,
                )
            )
            originals = forwards(persist_xml)
            if originals:
                live_fwd = forwards(xml)
                for (_n, _p, _a, live_port, _g), (_n2, _p2, _a2, own, _g2) in zip(
                    live_fwd, originals, strict=False
                ):
                    xml = xml.replace(f":{live_port}-", f":{own}-", 1)
                dest_xml = shift_forwards(xml, self.forward_offset)
        moved = src.migrate_vm(
            name,
            self.uris[dest],
            live=live,
            dest_xml=dest_xml,
            persist_xml=persist_xml,
            unsafe=self.unsafe_migration,
        )
        if originals:
            self.restore_forwards(dest, name, originals)
            moved = self.member(dest).vm(name)
        return self._vm_named(dest, moved)

    def live_forwards(self, host: str, name: str) -> list[tuple[str, str, int]]:
        """The forwards the running QEMU has now, ``[(proto, address, host port)]``, from the
        monitor (``info usernet``): the live XML keeps naming what QEMU was started with."""
        import libvirt_qemu

        member = self.member(host)
        dom = member._domain(name)
        hmp = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        try:
            text = str(libvirt_qemu.qemuMonitorCommand(dom, "info usernet", hmp))
        except libvirt.libvirtError as exc:
            raise PlatformError(
                f"read forwards of {name} failed: {one_line(str(exc))}", where=member.endpoint
            ) from None
        out = []
        for line in text.splitlines():
            parts = line.split()
            # "TCP[HOST_FORWARD]  14  127.0.0.61  2261  10.0.2.15  22  0  0"
            if len(parts) >= 4 and parts[0].endswith("[HOST_FORWARD]") and parts[3].isdigit():
                out.append((parts[0].split("[")[0].lower(), parts[2], int(parts[3])))
        return out

    def restore_forwards(
        self, host: str, name: str, originals: list[tuple[str, str, str, int, str]]
    ) -> None:
        """Move a running guest's user-mode forwards back to ``originals`` (through the QEMU
        monitor) and make sure its persistent definition names them."""
        import libvirt_qemu

        member = self.member(host)
        dom = member._domain(name)
        hmp = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        live = self.live_forwards(host, name)
        for netdev, proto, addr, port, guest in originals:
            if (proto, addr, port) in live:
                continue
            commands = [f"hostfwd_add {netdev} {proto}:{addr}:{port}-{guest}"]
            shifted = (proto, addr, port + (self.forward_offset or 0))
            if shifted in live:
                commands.insert(0, f"hostfwd_remove {netdev} {proto}:{addr}:{shifted[2]}")
            for command in commands:
                try:
                    out = str(libvirt_qemu.qemuMonitorCommand(dom, command, hmp)).strip()
                except libvirt.libvirtError as exc:
                    raise PlatformError(
                        f"move forward of {name} failed: {command}: {one_line(str(exc))}",
                        where=member.endpoint,
                    ) from None
                if out and "removed" not in out:
                    raise PlatformError(
                        f"move forward of {name} failed: {command}: {one_line(out)}",
                        where=member.endpoint,
                    )
        persistent = str(
            member._call("read vm", name, dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE)
        )
        fixed = persistent
        for now, own in zip(forwards(persistent), originals, strict=False):
            if now[3] != own[3]:
                fixed = fixed.replace(f"{now[2]}:{now[3]}-", f"{own[2]}:{own[3]}-", 1)
        if fixed != persistent:
            member._call("redefine vm", name, member.conn.defineXML, fixed)

    # -- hosts ------------------------------------------------------------------------------

    def enter_maintenance(self, host: str | None = None, **kwargs: Any) -> HostFacts:
        name = self._host_name(host)
        return self._named(name, self.member(name).enter_maintenance(**kwargs))

    def exit_maintenance(self, host: str | None = None) -> HostFacts:
        name = self._host_name(host)
        return self._named(name, self.member(name).exit_maintenance())

    def host_details(self) -> list[dict[str, Any]]:
        """Per host: name, endpoint and ``connection_state`` (``connected`` when its libvirtd
        answers, else ``disconnected``); never raises for one host that does not answer."""
        out = []
        for host, uri in self.uris.items():
            try:
                self.member(host).hostname()
                state = "connected"
            except PlatformError:
                state = "disconnected"
            out.append({"name": host, "endpoint": redact_endpoint(uri), "connection_state": state})
        return out

    def tasks_in_flight(self) -> list[str]:
        """Domains with a libvirt job running (a migration, a save, a backup), per host."""
        out = []
        for host in self.uris:
            member = self.member(host)
            for dom in member._call("list", "vms", member.conn.listAllDomains, 0):
                try:
                    job = dom.jobInfo()[0]
                except libvirt.libvirtError:
                    continue  # the domain went away while listing: nothing in flight for it
                if job != libvirt.VIR_DOMAIN_JOB_NONE:
                    out.append(f"vm {dom.name()} on {host}: libvirt job {job} running")
        return sorted(out)

    def events(self, since: datetime | None = None) -> list[EventFacts]:
        raise NotSupported("events", "libvirt keeps no event history", where=self.endpoint)

    def close(self) -> None:
        for member in self._members.values():
            member.close()
        self._members.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
