"""vSphere adapter: :class:`VspherePlatform` implements :class:`HypervisorPlatform` with pyVmomi
for a vCenter Server or a standalone ESXi host.

TLS certificates are verified by default (the system trust store, or ``ca_file``); a lab with
self-signed certificates opts out with ``validate_certs=False``. The password is held only by
the connection: every message the adapter produces is scrubbed of it, and no facts carry it.

Reads go through the PropertyCollector (one ``RetrievePropertiesEx`` per object type), so a
host's facts cost one round trip however many checks read them. What a platform cannot
perform raises :class:`~qualification.errors.NotSupported`: ``placement`` (DRS VM-host rules
are not modelled yet), and whatever the endpoint itself answers with ``NotImplemented`` or
``NotSupported`` (VMware's simulator: ``MigrateVM_Task``, ``RebootHost_Task``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import (
    PAUSED,
    RUNNING,
    STOPPED,
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
)
from qualification.platforms.vsphere.connection import VsphereConnection, _text, vim, vmodl
from qualification.platforms.vsphere.facts import POWER as _POWER
from qualification.platforms.vsphere.facts import (
    SUMMARY_PROPS,
    _dvportgroups,
    _host_details,
    _option_values,
    _vm_devices,
    _walk_snapshots,
    vm_summaries_of,
)

_SNAPSHOT_POWER = {"poweredOn": RUNNING, "poweredOff": STOPPED, "suspended": PAUSED}


class VspherePlatform(VsphereConnection):
    """One pyVmomi session with vCenter or ESXi, as a :class:`HypervisorPlatform`.

    Args:
        endpoint: address, credentials, TLS policy and (vCenter) the datacenter and cluster
            to work in; without a cluster every host of the endpoint counts.

    Raises:
        PlatformError: the endpoint cannot be reached, its certificate is not trusted, or the
            login is refused (one line, no password).
    """

    platform = "vsphere"

    # -- facts ------------------------------------------------------------------------------

    def about(self) -> PlatformAbout:
        about = self.content.about
        return PlatformAbout(
            platform=self.platform,
            product=_text(about.name),
            version=_text(about.version),
            api_version=_text(about.apiVersion),
            endpoint=self.endpoint,
        )

    def about_details(self) -> dict[str, str]:
        """``ServiceContent.about``: product name, full name, version, build, API type and version."""
        about = self.content.about
        return {
            "name": _text(about.name),
            "full_name": _text(about.fullName),
            "vendor": _text(about.vendor),
            "version": _text(about.version),
            "build": _text(about.build),
            "api_type": _text(about.apiType),
            "api_version": _text(about.apiVersion),
            "product_line": _text(about.productLineId),
            "os_type": _text(about.osType),
        }

    def host_details(self) -> list[dict[str, Any]]:
        """Every host in scope as plain JSON: hardware, firmware, product, security, network,
        services, time and DNS, attachments; what the checks read (sorted by name)."""
        return [_host_details(props) for _obj, props in self._hosts_raw()]

    def _host_facts(self, props: Mapping[str, Any]) -> HostFacts:
        d = _host_details(props)
        return HostFacts(
            name=d["name"],
            uuid=d["hardware"]["uuid"] or None,
            cpu=CpuFacts(
                model=d["cpu"]["model"],
                arch="x86_64",
                vendor=d["cpu"]["vendor"] or None,
                count=d["cpu"]["threads"],
                mhz=d["cpu"]["mhz"],
                sockets=d["cpu"]["packages"],
                cores_per_socket=d["cpu"]["cores"] // max(d["cpu"]["packages"], 1),
                threads_per_core=d["cpu"]["threads"] // max(d["cpu"]["cores"], 1),
            ),
            memory_mib=d["memory_bytes"] // (1024 * 1024),
            numa_nodes=d["cpu"]["packages"],
            hardware={"vendor": d["hardware"]["vendor"], "model": d["hardware"]["model"]},
            firmware={k: d["bios"][k] for k in ("vendor", "version", "date")},
            software={k: d["product"][k] for k in ("name", "version", "build")},
            in_maintenance=d["in_maintenance"],
            cluster=d["cluster"],
        )

    def hosts(self) -> list[HostFacts]:
        return [self._host_facts(props) for _obj, props in self._hosts_raw()]

    def host(self, name: str | None = None) -> HostFacts:
        hosts = self.hosts()
        if name is None:
            if len(hosts) != 1:
                names = ", ".join(h.name for h in hosts)
                raise PlatformError(
                    f"name a host: the endpoint manages {len(hosts)} ({names})", where=self.endpoint
                )
            return hosts[0]
        for facts in hosts:
            if facts.name == name:
                return facts
        raise PlatformError(f"host {name!r} not found", where=self.endpoint)

    def clusters(self) -> list[ClusterFacts]:
        """Clusters in scope (the endpoint's ``cluster``, else all) with HA and DRS settings."""
        rows = self._retrieve(
            vim.ClusterComputeResource,
            ["name", "host", "configurationEx"],
            self._scope_root(cluster=False),
        )
        if self._ep.cluster:
            rows = [row for row in rows if row[1].get("name") == self._ep.cluster]
        names = self._names(vim.HostSystem) if rows else {}
        out = []
        for _obj, props in rows:
            hosts = tuple(sorted(names.get(h._moId, h._moId) for h in props.get("host") or []))
            cfg = props.get("configurationEx")
            das = getattr(cfg, "dasConfig", None)
            drs = getattr(cfg, "drsConfig", None)
            policy = getattr(das, "admissionControlPolicy", None)
            attributes = {
                "ha_enabled": bool(getattr(das, "enabled", False)),
                "ha_host_monitoring": _text(getattr(das, "hostMonitoring", None)),
                "ha_admission_control": bool(getattr(das, "admissionControlEnabled", False)),
                "ha_admission_policy": type(policy).__name__.rsplit(".", 1)[-1] if policy else "",
                "ha_failover_level": int(getattr(policy, "failoverLevel", 0) or 0),
                "drs_enabled": bool(getattr(drs, "enabled", False)),
                "drs_behavior": _text(getattr(drs, "defaultVmBehavior", None)),
                "rules": sorted(_text(r.name) for r in getattr(cfg, "rule", None) or []),
            }
            out.append(
                ClusterFacts(name=str(props.get("name")), hosts=hosts, attributes=attributes)
            )
        return sorted(out, key=lambda c: c.name)

    def datastores(self) -> list[DatastoreFacts]:
        out = []
        for _obj, props in self._retrieve(
            vim.Datastore, ["name", "summary"], self._scope_root(cluster=False)
        ):
            s = props.get("summary")
            capacity = int(getattr(s, "capacity", 0) or 0)
            free = int(getattr(s, "freeSpace", 0) or 0)
            out.append(
                DatastoreFacts(
                    name=str(props.get("name")),
                    kind=_text(getattr(s, "type", "")),
                    active=bool(getattr(s, "accessible", False)),
                    persistent=True,
                    autostart=True,
                    capacity_bytes=capacity,
                    allocation_bytes=capacity - free,
                    available_bytes=free,
                    path=_text(getattr(s, "url", "")) or None,
                )
            )
        return sorted(out, key=lambda d: d.name)

    def networks(self) -> list[NetworkFacts]:
        out = []
        for _obj, props in self._retrieve(
            vim.Network, ["name", "summary.accessible"], self._scope_root(cluster=False)
        ):
            out.append(
                NetworkFacts(
                    name=str(props.get("name")),
                    active=bool(props.get("summary.accessible", True)),
                    persistent=True,
                    autostart=True,
                )
            )
        return sorted(out, key=lambda n: n.name)

    _VM_PROPS = (
        "name",
        "config",
        "runtime.powerState",
        "runtime.host",
        "snapshot",
    )

    def _vm_rows(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._retrieve(vim.VirtualMachine, self._VM_PROPS)

    def _vm_facts(
        self, props: Mapping[str, Any], host_names: Mapping[str, str] | None = None
    ) -> VmFacts:
        cfg = props.get("config")
        name = str(props.get("name"))
        host = props.get("runtime.host")
        host_name = (host_names or {}).get(str(getattr(host, "_moId", "")), "") if host else ""
        if host and not host_name:  # not in the listing's map: ask the host itself
            host_name = self._call("read", f"host of {name}", lambda: host.name)
        hw = getattr(cfg, "hardware", None)
        disks, nics, devices = _vm_devices(getattr(hw, "device", None) or [])
        boot = getattr(cfg, "bootOptions", None)
        native: dict[str, Any] = {
            "uuid": _text(getattr(cfg, "uuid", None)),
            "version": _text(getattr(cfg, "version", None)),
            "guestId": _text(getattr(cfg, "guestId", None)),
            "numCPU": int(getattr(hw, "numCPU", 0) or 0),
            "numCoresPerSocket": int(getattr(hw, "numCoresPerSocket", 0) or 0),
            "memoryMB": int(getattr(hw, "memoryMB", 0) or 0),
            "firmware": _text(getattr(cfg, "firmware", None)),
            "template": bool(getattr(cfg, "template", False)),
            "disks": [d.to_json() for d in disks],
            "nics": [n.to_json() for n in nics],
            "devices": sorted(devices),
        }
        return VmFacts(
            name=name,
            uuid=native["uuid"],
            host=host_name,
            power_state=_POWER.get(str(props.get("runtime.powerState")), UNKNOWN),
            persistent=True,
            autostart=False,
            vcpus=native["numCPU"],
            memory_mib=native["memoryMB"],
            max_memory_mib=native["memoryMB"],
            os_type=native["guestId"] or None,
            arch=None,
            machine=native["version"] or None,
            firmware="efi" if native["firmware"] == "efi" else "bios",
            secure_boot=bool(getattr(boot, "efiSecureBootEnabled", False)),
            disks=tuple(disks),
            nics=tuple(nics),
            devices=tuple(sorted(devices)),
            snapshots=tuple(s.name for s in _walk_snapshots(props.get("snapshot"))),
            config_digest=hashlib.sha256(json.dumps(native, sort_keys=True).encode()).hexdigest(),
        )

    def vms(self) -> list[VmFacts]:
        # Host names in one round trip, not one per VM (a thousand at 1,000 VMs).
        hosts = self._host_names()
        return sorted(
            (self._vm_facts(props, hosts) for _obj, props in self._vm_rows()),
            key=lambda v: v.name,
        )

    def vm_summaries(self) -> list[VmSummary]:
        """Every VM light (VQ-90): one PropertyCollector round trip, plus one for host names."""
        return vm_summaries_of(self._retrieve(vim.VirtualMachine, SUMMARY_PROPS),
                               self._host_names())

    def _vm_obj(self, name: str) -> tuple[Any, dict[str, Any]]:
        # Through the name map, checked on use: one round trip, not a listing of every VM.
        return self._by_name(
            "vm", name, self._vm_objs, self._list_vms, vim.VirtualMachine, self._VM_PROPS
        )

    def vm(self, name: str) -> VmFacts:
        return self._vm_facts(self._vm_obj(name)[1])

    def vm_details(self, name: str) -> dict[str, Any]:
        """A VM's facts plus vSphere-only ones (hardware version, cores per socket, template)."""
        _obj, props = self._vm_obj(name)
        facts = self._vm_facts(props).to_json()
        cfg = props.get("config")
        hw = getattr(cfg, "hardware", None)
        facts.update(
            hardware_version=_text(getattr(cfg, "version", None)),
            cores_per_socket=int(getattr(hw, "numCoresPerSocket", 0) or 0),
            template=bool(getattr(cfg, "template", False)),
            guest_id=_text(getattr(cfg, "guestId", None)),
        )
        return facts

    def dvportgroups(self) -> list[dict[str, Any]]:
        """Distributed port groups in scope (uplink port groups left out) with the security
        policy of their default port configuration; ``security`` is None where the endpoint
        reports none."""
        rows = self._retrieve(
            vim.dvs.DistributedVirtualPortgroup,
            ["name", "config.defaultPortConfig", "config.uplink", "tag"],
            self._scope_root(cluster=False),
        )
        # Uplink port groups carry the switch's physical NICs, not VMs. vCenter marks them three
        # ways (config.uplink, the tag SYSTEM/DVS.UPLINKPG, the switch's uplinkPortgroup);
        # the simulator sets none of them, so there its uplink port group is listed too.
        uplinks = {
            pg._moId
            for _obj, props in self._retrieve(
                vim.DistributedVirtualSwitch,
                ["config.uplinkPortgroup"],
                self._scope_root(cluster=False),
            )
            for pg in props.get("config.uplinkPortgroup") or []
        }
        return _dvportgroups(rows, uplinks)

    def advanced_option(self, key: str) -> dict[str, Any]:
        """``{host: value}`` of the advanced option ``key`` on every host in scope, read with
        ``configManager.advancedOption.QueryOptions``; a host without that option is left out.
        """
        rows = self._retrieve(
            vim.HostSystem, ["name", "configManager.advancedOption"], self._scope_root()
        )
        values: dict[str, Any] = {}
        for _obj, props in sorted(rows, key=lambda row: str(row[1].get("name"))):
            name = str(props.get("name"))
            manager = props.get("configManager.advancedOption")
            if manager is None:
                continue
            try:
                found = self._call(
                    "read advanced option", f"{key} of {name}", manager.QueryOptions, key
                )
            except PlatformError as exc:
                if "InvalidName" in exc.message:  # the host has no such option
                    continue
                raise
            for option in found or []:
                if option.key == key:
                    value = option.value
                    values[name] = (
                        value
                        if isinstance(value, (bool, int, float, str)) or value is None
                        else str(value)
                    )
        return values

    def vm_exists(self, name: str) -> bool:
        return name in self._list_vms()

    @property
    def standalone(self) -> bool:
        """True for a standalone ESXi endpoint (``about.apiType`` HostAgent), not a vCenter."""
        return _text(self.content.about.apiType) == "HostAgent"

    def _custom_field_key(self, name: str, *, create: bool) -> int | None:
        """Key of the VM custom attribute ``name``; None where the endpoint has no
        CustomFieldsManager (a standalone ESXi) or, unless ``create``, no such attribute."""
        manager = self.content.customFieldsManager
        if manager is None:
            return None
        for field in self._call("read", "custom attributes", lambda: manager.field) or []:
            if field.name == name and field.managedObjectType in (vim.VirtualMachine, None):
                return int(field.key)
        if not create:
            return None
        added = self._call(
            "define custom attribute",
            name,
            manager.AddCustomFieldDef,
            name=name,
            moType=vim.VirtualMachine,
        )
        return int(added.key)

    def set_vm_attribute(self, vm: str, name: str, value: str) -> bool:
        """Set the custom attribute ``name`` of ``vm`` (defining it on first use).

        Returns:
            False where the endpoint has no custom attributes (a standalone ESXi).
        """
        key = self._custom_field_key(name, create=True)
        if key is None:
            return False
        obj, _props = self._vm_obj(vm)
        manager = self.content.customFieldsManager
        self._call(
            "set custom attribute",
            f"{name} of {vm}",
            manager.SetField,
            entity=obj,
            key=key,
            value=value,
        )
        return True

    def vm_tags(self, name: str) -> list[dict[str, Any]]:
        """Every VM with its power state, host and the value of custom attribute and
        ``config.extraConfig`` key ``name`` (None where not set), in two reads."""
        key = self._custom_field_key(name, create=False)
        rows = self._retrieve(
            vim.VirtualMachine,
            ["name", "runtime.powerState", "runtime.host", "customValue", "config.extraConfig"],
        )
        hosts = self._names(vim.HostSystem) if rows else {}
        out = []
        for _obj, props in rows:
            attribute = None
            if key is not None:
                for item in props.get("customValue") or []:
                    if int(item.key) == key:
                        attribute = _text(getattr(item, "value", None))
            extra = None
            for option in props.get("config.extraConfig") or []:
                if option.key == name:
                    extra = _text(option.value)
            host = props.get("runtime.host")
            out.append(
                {
                    "name": _text(props.get("name")),
                    "power_state": _POWER.get(str(props.get("runtime.powerState")), UNKNOWN),
                    "host": hosts.get(getattr(host, "_moId", ""), "") if host is not None else "",
                    "attribute": attribute,
                    "extra_config": extra,
                }
            )
        return sorted(out, key=lambda v: v["name"])

    def host_runtime(self) -> list[dict[str, Any]]:
        """Hosts in scope with connection state, maintenance mode and the powered-on VMs
        registered on them (``runtime.host``), in two reads; sorted by name."""
        rows = self._retrieve(
            vim.HostSystem,
            ["name", "runtime.connectionState", "runtime.inMaintenanceMode"],
            self._scope_root(),
        )
        running: dict[str, list[str]] = {}
        for _obj, props in self._retrieve(
            vim.VirtualMachine, ["name", "runtime.powerState", "runtime.host"]
        ):
            host = props.get("runtime.host")
            if props.get("runtime.powerState") == "poweredOn" and host is not None:
                running.setdefault(host._moId, []).append(_text(props.get("name")))
        return sorted(
            (
                {
                    "name": _text(props.get("name")),
                    "connection_state": _text(props.get("runtime.connectionState")),
                    "in_maintenance": bool(props.get("runtime.inMaintenanceMode")),
                    "powered_on_vms": sorted(running.get(obj._moId, [])),
                }
                for obj, props in rows
            ),
            key=lambda h: h["name"],
        )

    def vm_state(self, name: str, tag: str) -> dict[str, Any]:
        """What an OQ step records of one VM, in one read: ``{"exists": False}``, or its
        UUID, power state, host, snapshots, current snapshot, and the values of custom
        attribute and ``config.extraConfig`` key ``tag`` (None where not set)."""
        key = self._custom_field_key(tag, create=False)
        rows = self._retrieve(
            vim.VirtualMachine, (*self._VM_PROPS, "customValue", "config.extraConfig")
        )
        found = [props for _obj, props in rows if props.get("name") == name]
        if not found:
            return {"exists": False}
        props = found[0]
        facts = self._vm_facts(props)
        snaps = self._snapshot_facts(name, props)
        attribute = next(
            (
                _text(getattr(v, "value", None))
                for v in props.get("customValue") or []
                if key is not None and int(v.key) == key
            ),
            None,
        )
        extra = next(
            (_text(o.value) for o in props.get("config.extraConfig") or [] if o.key == tag), None
        )
        return {
            "exists": True,
            "uuid": facts.uuid,
            "power_state": facts.power_state,
            "host": facts.host,
            "template": bool(getattr(props.get("config"), "template", False)),
            "vcpus": facts.vcpus,
            "memory_mib": facts.memory_mib,
            "snapshots": [s.name for s in snaps],
            "current_snapshot": next((s.name for s in snaps if s.current), None),
            "tag": {"attribute": attribute, "extra_config": extra},
        }

    # -- operations -------------------------------------------------------------------------

    def _placement_pool_and_folder(self) -> tuple[Any, Any, Any]:
        """(resource pool, VM folder, datastore name) in scope, for new VMs."""
        root = self._scope_root()
        pools = self._retrieve(vim.ResourcePool, ["name"], root)
        if not pools:
            raise PlatformError("no resource pool to create a VM in", where=self.endpoint)
        pool = pools[0][0]
        dcs = self._retrieve(vim.Datacenter, ["name", "vmFolder"])
        if self._ep.datacenter:
            dcs = [row for row in dcs if row[1].get("name") == self._ep.datacenter]
        if not dcs:
            raise PlatformError("no datacenter to create a VM in", where=self.endpoint)
        stores = self.datastores()
        return pool, dcs[0][1]["vmFolder"], stores[0].name if stores else None

    def create_vm(
        self, config: VmConfig, *, extra_config: Mapping[str, str] | None = None
    ) -> VmFacts:
        """Create a VM from ``config``; ``extra_config`` entries go into its
        ``config.extraConfig`` in the same call, so a tag is there from the VM's first moment."""
        if config.native is not None:
            raise NotSupported(
                "create vm from a native definition",
                "vSphere takes a VmConfig",
                where=self.endpoint,
            )
        if self.vm_exists(config.name):
            raise PlatformError(
                f"create vm {config.name} failed: a VM of that name exists", where=self.endpoint
            )
        pool, folder, store = self._placement_pool_and_folder()
        datastore = config.pool or store
        spec = vim.vm.ConfigSpec(
            name=config.name,
            numCPUs=config.vcpus,
            memoryMB=config.memory_mib,
            guestId="otherGuest64",
            files=vim.vm.FileInfo(vmPathName=f"[{datastore}]" if datastore else ""),
            extraConfig=_option_values(extra_config),
        )
        task = self._call("create vm", config.name, folder.CreateVM_Task, config=spec, pool=pool)
        self._wait("create vm", config.name, task)
        return self.vm(config.name)

    def delete_vm(self, name: str, *, delete_storage: bool = False) -> None:
        obj, props = self._vm_obj(name)
        if props.get("runtime.powerState") == "poweredOn":
            raise PlatformError(f"delete vm {name} failed: the VM is running", where=self.endpoint)
        if delete_storage:
            self._wait("delete vm", name, self._call("delete vm", name, obj.Destroy_Task))
        else:
            self._call("unregister vm", name, obj.UnregisterVM)

    def power_on(self, name: str) -> VmFacts:
        obj, props = self._vm_obj(name)
        if props.get("runtime.powerState") != "poweredOn":
            self._wait("power on", name, self._call("power on", name, obj.PowerOnVM_Task))
        return self.vm(name)

    def power_off(self, name: str, *, graceful: bool = False, timeout_s: float = 60.0) -> VmFacts:
        obj, props = self._vm_obj(name)
        if props.get("runtime.powerState") == "poweredOff":
            return self.vm(name)
        if graceful:
            self._call("guest shutdown", name, obj.ShutdownGuest)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.vm(name).power_state == STOPPED:
                    return self.vm(name)
                time.sleep(0.2)
            raise PlatformError(
                f"guest shutdown {name} failed: still running after {timeout_s:g} s",
                where=self.endpoint,
            )
        self._wait("power off", name, self._call("power off", name, obj.PowerOffVM_Task))
        return self.vm(name)

    def snapshots(self, vm: str) -> list[SnapshotFacts]:
        return self._snapshot_facts(vm, self._vm_obj(vm)[1])

    def _snapshot_facts(self, vm: str, props: Mapping[str, Any]) -> list[SnapshotFacts]:
        tree = props.get("snapshot")
        current = getattr(tree, "currentSnapshot", None)
        out = []
        for node in _walk_snapshots(tree):
            created = getattr(node, "createTime", None)
            out.append(
                SnapshotFacts(
                    name=str(node.name),
                    vm=vm,
                    power_state=_SNAPSHOT_POWER.get(str(node.state), UNKNOWN),
                    current=current is not None and node.snapshot == current,
                    created=int(created.timestamp()) if isinstance(created, datetime) else None,
                )
            )
        return out

    def _snapshot_obj(self, vm: str, name: str) -> Any:
        _obj, props = self._vm_obj(vm)
        for node in _walk_snapshots(props.get("snapshot")):
            if node.name == name:
                return node.snapshot
        raise PlatformError(f"snapshot {name!r} of vm {vm!r} not found", where=self.endpoint)

    def snapshot_create(self, vm: str, name: str, *, description: str = "") -> SnapshotFacts:
        obj, props = self._vm_obj(vm)
        # With the memory of a running VM, so a revert restores it running (as libvirt does).
        memory = props.get("runtime.powerState") == "poweredOn"
        task = self._call(
            "create snapshot",
            f"{name} of {vm}",
            obj.CreateSnapshot_Task,
            name=name,
            description=description,
            memory=memory,
            quiesce=False,
        )
        self._wait("create snapshot", f"{name} of {vm}", task)
        for snap in self.snapshots(vm):
            if snap.name == name:
                return snap
        raise PlatformError(
            f"create snapshot {name} of {vm} failed: not listed afterwards", where=self.endpoint
        )

    def snapshot_revert(self, vm: str, name: str) -> VmFacts:
        snap = self._snapshot_obj(vm, name)
        self._wait(
            "revert snapshot",
            f"{name} of {vm}",
            self._call("revert snapshot", f"{name} of {vm}", snap.RevertToSnapshot_Task),
        )
        return self.vm(vm)

    def snapshot_delete(self, vm: str, name: str) -> None:
        snap = self._snapshot_obj(vm, name)
        task = self._call(
            "delete snapshot", f"{name} of {vm}", snap.RemoveSnapshot_Task, removeChildren=False
        )
        self._wait("delete snapshot", f"{name} of {vm}", task)

    def clone_vm(
        self, source: str, name: str, *, extra_config: Mapping[str, str] | None = None
    ) -> VmFacts:
        """Clone ``source`` (a VM or template) to a stopped VM ``name``; ``extra_config``
        entries are set on the clone by the clone call itself."""
        obj, _props = self._vm_obj(source)
        if self.vm_exists(name):
            raise PlatformError(
                f"clone {source} to {name} failed: a VM of that name exists", where=self.endpoint
            )
        pool, folder, _store = self._placement_pool_and_folder()
        spec = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(pool=pool),
            powerOn=False,
            template=False,
            config=vim.vm.ConfigSpec(extraConfig=_option_values(extra_config))
            if extra_config
            else None,
        )
        task = self._call(
            "clone", f"{source} to {name}", obj.CloneVM_Task, folder=folder, name=name, spec=spec
        )
        self._wait("clone", f"{source} to {name}", task)
        return self.vm(name)

    def migrate_vm(self, name: str, destination: str, *, live: bool = True) -> VmFacts:
        """Move a VM to host ``destination`` with ``RelocateVM_Task`` (vMotion when it runs)."""
        obj, props = self._vm_obj(name)
        if not live and props.get("runtime.powerState") == "poweredOn":
            raise PlatformError(
                f"migrate {name} failed: cold migration needs the VM stopped", where=self.endpoint
            )
        target = self._host_obj(destination)
        owner = self._call(
            "read", f"resource pool of {destination}", lambda: target.parent.resourcePool
        )
        spec = vim.vm.RelocateSpec(host=target, pool=owner)
        self._wait(
            "migrate",
            f"{name} to {destination}",
            self._call("migrate", f"{name} to {destination}", obj.RelocateVM_Task, spec),
        )
        return self.vm(name)

    def placement(self, vm: str) -> Placement:
        raise NotSupported(
            "placement",
            "DRS VM-host rules are not modelled by the vSphere adapter",
            where=self.endpoint,
        )

    def set_placement(self, vm: str, placement: Placement) -> VmFacts:
        raise NotSupported(
            "set placement",
            "DRS VM-host rules are not modelled by the vSphere adapter",
            where=self.endpoint,
        )

    def enter_maintenance(self, host: str | None = None) -> HostFacts:
        obj = self._host_obj(host)
        name = self._call("read", "host name", lambda: obj.name)
        if not self._call(
            "read", f"maintenance state of {name}", lambda: obj.runtime.inMaintenanceMode
        ):
            task = self._call(
                "enter maintenance",
                name,
                obj.EnterMaintenanceMode_Task,
                timeout=0,
                evacuatePoweredOffVms=False,
            )
            self._wait("enter maintenance", name, task)
        return self.host(name)

    def exit_maintenance(self, host: str | None = None) -> HostFacts:
        obj = self._host_obj(host)
        name = self._call("read", "host name", lambda: obj.name)
        if self._call(
            "read", f"maintenance state of {name}", lambda: obj.runtime.inMaintenanceMode
        ):
            self._wait(
                "exit maintenance",
                name,
                self._call("exit maintenance", name, obj.ExitMaintenanceMode_Task, timeout=0),
            )
        return self.host(name)

    def events(self, since: datetime | None = None) -> list[EventFacts]:
        manager = self.content.eventManager
        flt = vim.event.EventFilterSpec()
        if since is not None:
            flt.time = vim.event.EventFilterSpec.ByTime(beginTime=since)
        found = self._call("read", "events", manager.QueryEvents, flt) or []
        out = []
        for event in found:
            created = event.createdTime
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            target = ""
            for attr in ("vm", "host", "computeResource", "datacenter"):
                arg = getattr(event, attr, None)
                if arg is not None and getattr(arg, "name", None):
                    target = str(arg.name)
                    break
            out.append(
                EventFacts(
                    time=created.astimezone(UTC),
                    kind=type(event).__name__.rsplit(".", 1)[-1],
                    target=target,
                    message=self._clean(_text(event.fullFormattedMessage)),
                    user=_text(event.userName) or None,
                )
            )
        return sorted(out, key=lambda e: e.time)

    def tasks_in_flight(self) -> list[str]:
        """Tasks queued or running on the endpoint (``TaskManager.recentTask``), one line each;
        the rolling patch refuses to start while any is (qualification/rollout/gates.py)."""
        tasks = self._call("read", "recent tasks", lambda: self.content.taskManager.recentTask)
        if not tasks:
            return []
        collector = vmodl.query.PropertyCollector
        spec = collector.FilterSpec(
            objectSet=[collector.ObjectSpec(obj=t, skip=False) for t in tasks],
            propSet=[collector.PropertySpec(
                type=vim.Task, pathSet=["info.state", "info.descriptionId", "info.entityName"])],
        )
        found = self._call("read", "recent tasks",
                           self.content.propertyCollector.RetrievePropertiesEx,
                           [spec], collector.RetrieveOptions())
        out = []
        for obj in getattr(found, "objects", None) or []:
            props = {p.name: p.val for p in obj.propSet or []}
            if str(props.get("info.state")) in ("queued", "running"):
                out.append(f"{props.get('info.descriptionId')} on {props.get('info.entityName')} "
                           f"({props.get('info.state')})")
        return sorted(out)
