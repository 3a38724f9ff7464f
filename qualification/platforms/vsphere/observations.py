"""What the ``vsphere`` probe answers: its IQ observations and OQ scenarios, as one table.

The table is run by the generic request loop (:func:`qualification.platforms.base.answer_loop`)
in one pyVmomi session per call, the host facts read once for every method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qualification.checks.guest_os import from_vsphere_guest_id
from qualification.platforms.base import BadArgs, ObservationTable, OqContext, answer_loop
from qualification.platforms.base import probe_observation as _observation
from qualification.platforms.oq import lifecycle_observation
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.connection import HOST_PROPERTIES
from qualification.platforms.vsphere.endpoint import Endpoint
from qualification.platforms.vsphere.oq import protocol_observation
from qualification.platforms.vsphere.paths import redundant_paths


def _raw(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class VsphereSession:
    """One probe call's connection, with the host facts read once for every method."""

    def __init__(self, platform: VspherePlatform) -> None:
        self.platform = platform
        self.secrets = platform._secrets
        self._hosts: list[dict[str, Any]] | None = None

    def hosts(self) -> list[dict[str, Any]]:
        if self._hosts is None:
            self._hosts = self.platform.host_details()
        return self._hosts

    def close(self) -> None:
        self.platform.close()


# -- IQ: one read per method --------------------------------------------------------------------


def _about(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.platform.about_details()
    return _observation(
        value=value, raw=_raw(value),
        method=f"vSphere ServiceContent.about {session.platform.endpoint}",
    )


def _hosts(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.hosts()
    return _observation(
        value=value,
        raw=_raw(value),
        method=f"vSphere PropertyCollector HostSystem {{{', '.join(HOST_PROPERTIES)}}} "
        f"{session.platform.endpoint}",
    )


def _time(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    hosts = session.hosts()
    missing = [h["name"] for h in hosts if h["time"] is None]
    method_text = (
        f"vSphere HostSystem.config.dateTimeInfo, config.service[ntpd] {session.platform.endpoint}"
    )
    if missing:
        return _observation(
            method=method_text,
            not_executed="the endpoint does not report config.dateTimeInfo (NTP configuration) "
            f"for {', '.join(missing)}",
        )
    value = {h["name"]: {**h["time"], "ntpd": h["services"].get("ntpd")} for h in hosts}
    return _observation(value=value, raw=_raw(value), method=method_text)


def _advanced(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    key = args.get("key")
    if not isinstance(key, str) or not key:
        raise BadArgs("advanced: argument 'key' (an advanced option name) is required")
    found = session.platform.advanced_option(key)
    names = [h["name"] for h in session.hosts()]
    method_text = (
        f"vSphere HostSystem.configManager.advancedOption.QueryOptions({key}) "
        f"{session.platform.endpoint}"
    )
    if not found:
        return _observation(
            method=method_text,
            not_executed=f"no host has the advanced option {key} ({', '.join(names)})",
        )
    # A host that lacks an option others have reads as None, so it fails and is named.
    value = {name: found.get(name) for name in names}
    return _observation(value=value, raw=_raw(value), method=method_text)


def _dvportgroups(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    groups = session.platform.dvportgroups()
    method_text = (
        "vSphere DistributedVirtualPortgroup.config.defaultPortConfig.securityPolicy "
        f"{session.platform.endpoint}"
    )
    unreported = [g["name"] for g in groups if g["security"] is None]
    if groups and len(unreported) == len(groups):
        return _observation(
            method=method_text,
            not_executed=f"the endpoint reports no security policy for {', '.join(unreported)}",
        )
    return _observation(value=groups, raw=_raw(groups), method=method_text)


def _hcl(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    entries = args.get("entries")
    if not isinstance(entries, list):
        raise BadArgs("hcl: no HCL entries (the spec's data file was not resolved)")
    hosts = [{k: h[k] for k in ("name", "hardware", "bios", "product")} for h in session.hosts()]
    value = {"hcl": args.get("hcl"), "digest": args.get("digest"), "hosts": hosts,
             "entries": entries}
    return _observation(
        value=value,
        raw=_raw(hosts),
        method="vSphere HostSystem.hardware.{systemInfo,biosInfo}, config.product against HCL "
        f"{args.get('hcl')} {session.platform.endpoint}",
    )


def _guest_os(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    """Each VM's guest id as ``(os, version)``, the product and version of every host, and
    the support list the request carries (``data_files.with_guest_os_support``)."""
    entries = args.get("entries")
    if not isinstance(entries, list):
        raise BadArgs("guest_os: no support list (the spec's data file was not resolved)")
    hypervisors = {
        h["name"]: {"product": (h.get("product") or {}).get("name"),
                    "version": (h.get("product") or {}).get("version")}
        for h in session.hosts()
    }
    guests = []
    for vm in session.platform.vms():
        guest_id = vm.os_type or ""
        identity = from_vsphere_guest_id(guest_id) if guest_id else None
        guests.append({
            "name": vm.name, "host": vm.host,
            "os": identity[0] if identity else None,
            "version": identity[1] if identity else None,
            "source": f"vSphere guest id {guest_id}" if guest_id else "no guest id",
        })
    value = {"support": args.get("support"), "digest": args.get("digest"),
             "hypervisors": hypervisors, "guests": guests, "entries": entries}
    return _observation(
        value=value, raw=_raw(guests),
        method="vSphere VirtualMachine.config.guestId, HostSystem.config.product against guest "
        f"OS support {args.get('support')} {session.platform.endpoint}",
    )


def _clusters(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = [c.to_json() for c in session.platform.clusters()]
    return _observation(value=value, raw=_raw(value),
                        method=f"vSphere ClusterComputeResource {session.platform.endpoint}")


def _datastores(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = [d.to_json() for d in session.platform.datastores()]
    return _observation(value=value, raw=_raw(value),
                        method=f"vSphere Datastore.summary {session.platform.endpoint}")


def _networks(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = [n.to_json() for n in session.platform.networks()]
    return _observation(value=value, raw=_raw(value),
                        method=f"vSphere Network {session.platform.endpoint}")


def _paths(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = redundant_paths(session.platform)
    return _observation(
        value=value, raw=_raw(value),
        method="vSphere HostSystem.config.{network.vswitch,network.pnic,storageDevice."
        f"multipathInfo}}, Datastore.info {session.platform.endpoint}",
    )


def _vm(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise BadArgs("vm: argument 'name' (a VM name) is required")
    value = session.platform.vm_details(name)
    return _observation(value=value, raw=_raw(value),
                        method=f"vSphere VirtualMachine {name} config {session.platform.endpoint}")


def _vms(session: VsphereSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = [v.to_json() for v in session.platform.vms()]
    return _observation(value=value, raw=_raw(value),
                        method=f"vSphere VirtualMachine list {session.platform.endpoint}")


# -- OQ: scenarios on throwaway VMs -------------------------------------------------------------


def throwaway_vm(ctx: OqContext) -> str:
    """The OQ lifecycle's throwaway VM: ``vqual-oq-<run id>[-<position>]``."""
    suffix = "".join(c for c in ctx.run_id if c.isalnum() or c in "-_") or "run"
    return f"vqual-oq-{suffix}" + (f"-{ctx.position}" if ctx.position > 1 else "")


def _lifecycle(session: VsphereSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    platform = session.platform
    return lifecycle_observation(platform, throwaway_vm(ctx), args, "vSphere",
                                 str(platform.endpoint))


def _protocol(session: VsphereSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    return protocol_observation(session.platform, ctx.run_id, args)


def _decommission(session: VsphereSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    from qualification.platforms.vsphere.decommission import decommission

    return decommission(session.platform, str(args.get("name")), str(args.get("storage", "delete")))


TABLE: ObservationTable[VsphereSession] = ObservationTable(
    probe="vsphere",
    iq={
        "about": _about,
        "hosts": _hosts,
        "time": _time,
        "advanced": _advanced,
        "dvportgroups": _dvportgroups,
        "hcl": _hcl,
        "guest_os": _guest_os,
        "clusters": _clusters,
        "datastores": _datastores,
        "networks": _networks,
        "paths": _paths,
        "vm": _vm,
        "vms": _vms,
    },
    oq={
        "oq_lifecycle": _lifecycle,
        "oq_protocol": _protocol,
        # removes the target VM itself (vqual decommission): never in check mode
        "decommission": _decommission,
    },
)
IQ_METHODS = tuple(TABLE.iq)
OQ_METHODS = tuple(TABLE.oq)


def probe(
    endpoint: Endpoint,
    requests: Sequence[Mapping[str, Any]],
    *,
    check_mode: bool = False,
    run_id: str = "",
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Answer every request on one vSphere session.

    Returns:
        ``({key: observation}, changed)``. A connection or login failure makes every
        observation an ``error`` with the one-line reason (no password); nothing here raises
        for a platform failure.
    """
    return answer_loop(
        TABLE, requests, lambda _write: VsphereSession(VspherePlatform(endpoint)),
        run_id=run_id, check_mode=check_mode,
    )
