"""What the ``libvirt`` probe answers: its IQ observations and OQ scenarios, as one table.

The table is run by the generic request loop (:func:`qualification.platforms.base.answer_loop`)
on one libvirt connection per call (the test driver keeps no state between connections).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import libvirt

from qualification.checks.guest_os import from_osinfo
from qualification.platforms.base import (
    BadArgs,
    ObservationTable,
    OqContext,
    answer_loop,
    observations_failed,
)
from qualification.platforms.base import probe_observation as _observation
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.domain_xml import osinfo_id, parse_capabilities
from qualification.platforms.libvirt.oq import guest_scenario, oq_lifecycle, oq_migrate
from qualification.timeutil import new_run_id

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class LibvirtSession:
    """One probe call's connection; numbers the throwaway VMs of its OQ scenarios."""

    def __init__(self, platform: LibvirtPlatform, run_id: str) -> None:
        self.platform = platform
        self.secrets = platform._secrets
        self.run_id = run_id
        self.oq_count = 0

    def next_vm(self) -> str:
        self.oq_count += 1
        return f"vqual-oq-{self.run_id}" + (f"-{self.oq_count}" if self.oq_count > 1 else "")

    def close(self) -> None:
        self.platform.close()


# -- IQ: one read per method --------------------------------------------------------------------


def _version(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    platform = session.platform
    about = platform.about()
    value = {
        "type": about.product,
        "hypervisor_version": about.version,
        "libvirt_version": about.api_version,
    }
    raw = json.dumps(
        {
            "getType": about.product,
            "getVersion": platform._call("read", "version", platform.conn.getVersion),
            "getLibVersion": platform._call("read", "version", platform.conn.getLibVersion),
        },
        sort_keys=True,
    )
    return _observation(
        value=value, raw=raw, method=f"libvirt getType/getVersion/getLibVersion {platform.endpoint}"
    )


def _nodeinfo(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    info = session.platform.node_info()
    return _observation(
        value=info, raw=json.dumps(list(info.values())),
        method=f"libvirt getInfo {session.platform.endpoint}",
    )


def _capabilities(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    xml = session.platform.capabilities_xml()
    return _observation(
        value=parse_capabilities(xml), raw=xml,
        method=f"libvirt getCapabilities {session.platform.endpoint}",
    )


def _hostname(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    name = session.platform.hostname()
    return _observation(value=name, raw=name, method=f"libvirt getHostname {session.platform.endpoint}")


def _sysinfo(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    return _observation(
        value=session.platform.sysinfo(), method=f"libvirt getSysinfo {session.platform.endpoint}"
    )


def _host(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    return _observation(
        value=session.platform.host().to_json(),
        method=f"libvirt host facts {session.platform.endpoint}",
    )


def _domains(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    return _observation(
        value=[v.to_json() for v in session.platform.vms()],
        method=f"libvirt listAllDomains {session.platform.endpoint}",
    )


def _domain(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    domain = args.get("name")
    if not isinstance(domain, str) or not domain:
        raise BadArgs("domain: argument 'name' (a domain name) is required")
    platform = session.platform
    return _observation(
        value=platform.vm(domain).to_json(),
        raw=platform.vm_xml(domain, inactive=True),
        method=f"libvirt lookupByName {domain} XMLDesc {platform.endpoint}",
    )


def _guest_os(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    """Each domain's guest OS from its libosinfo metadata, with the hypervisor's product and
    version and the support list the request carries (``data_files.with_guest_os_support``)."""
    entries = args.get("entries")
    if not isinstance(entries, list):
        raise BadArgs("guest_os: no support list (the spec's data file was not resolved)")
    platform = session.platform
    about = platform.about()
    guests = []
    for vm in platform.vms():
        os_id = osinfo_id(platform.vm_xml(vm.name, inactive=True))
        identity = from_osinfo(os_id) if os_id else None
        guests.append({
            "name": vm.name,
            "os": identity[0] if identity else None,
            "version": identity[1] if identity else None,
            "source": f"libosinfo {os_id}" if os_id else "no libosinfo metadata in the domain",
        })
    value = {
        "support": args.get("support"), "digest": args.get("digest"),
        "hypervisor": {"product": about.product, "version": about.version},
        "guests": guests, "entries": entries,
    }
    return _observation(
        value=value, raw=json.dumps(guests, sort_keys=True),
        method=f"libvirt listAllDomains XMLDesc libosinfo metadata against guest OS support "
        f"{args.get('support')} {platform.endpoint}",
    )


def _pools(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    return _observation(
        value=[d.to_json() for d in session.platform.datastores()],
        method=f"libvirt listAllStoragePools {session.platform.endpoint}",
    )


def _networks(session: LibvirtSession, args: Mapping[str, Any]) -> dict[str, Any]:
    return _observation(
        value=[n.to_json() for n in session.platform.networks()],
        method=f"libvirt listAllNetworks {session.platform.endpoint}",
    )


# -- OQ: scenarios on throwaway VMs -------------------------------------------------------------


def _lifecycle(session: LibvirtSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    return oq_lifecycle(session.platform, session.next_vm(), dict(args))


def _migrate(session: LibvirtSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    return oq_migrate(session.platform, session.next_vm(), dict(args))


def _guest(method: str) -> Any:
    def scenario(session: LibvirtSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
        return guest_scenario(session.platform, method, session.run_id, dict(args))

    scenario.__name__ = f"_{method}"
    return scenario


def _decommission(session: LibvirtSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    from qualification.platforms.libvirt.decommission import decommission

    return decommission(session.platform, str(args.get("name")), str(args.get("storage", "delete")))


#: OQ on booted throwaway guests (``guest_oq``): args ``template`` (a defined domain
#: with the QEMU guest agent), for the migration and the guest cycle's maintenance round trip
#: also ``destination`` (libvirt URI) and ``unsafe_migration``; the site gives them as the host
#: variable ``vqual_libvirt_oq``.
GUEST_OQ_METHODS = (
    "oq_guest_migrate", "oq_backup_restore", "oq_guest_cycle", "oq_guest_failover"
)

TABLE: ObservationTable[LibvirtSession] = ObservationTable(
    probe="libvirt",
    iq={
        "version": _version,
        "nodeinfo": _nodeinfo,
        "capabilities": _capabilities,
        "hostname": _hostname,
        "sysinfo": _sysinfo,
        "host": _host,
        "domains": _domains,
        "domain": _domain,
        "guest_os": _guest_os,
        "pools": _pools,
        "networks": _networks,
    },
    oq={
        "oq_lifecycle": _lifecycle,
        "oq_migrate": _migrate,
        **{m: _guest(m) for m in GUEST_OQ_METHODS},
        # removes the target VM itself (vqual decommission): never in check mode
        "decommission": _decommission,
    },
    vendor_errors=(libvirt.libvirtError,),
)
IQ_METHODS = tuple(TABLE.iq)
OQ_METHODS = tuple(TABLE.oq)


def probe(
    uri: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    check_mode: bool = False,
    run_id: str | None = None,
    state_dir: Path | None = None,
    domain_type: str | None = None,
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Answer every request on one libvirt connection.

    Args:
        uri: libvirt URI.
        requests: ``[{key, method, args}]`` as :meth:`ProbeRequest.to_json` makes them.
        check_mode: OQ methods change state, so they are not executed ("check mode").
        run_id: names the throwaway OQ VM ``vqual-oq-<run id>``; default a new run id.
        state_dir: vqual's state directory (maintenance markers).
        domain_type: domain type for throwaway VMs (``qemu`` for TCG labs).

    Returns:
        ``({key: observation}, changed)``; an observation is ``{value, raw, method, error,
        not_executed, actions}``. A connection failure makes every observation an error with
        the one-line reason; nothing here raises for a platform failure.

    Raises:
        BadArgs: the run id is not a safe name, or a request has no key.
    """
    if run_id is not None and not _SAFE_NAME.match(run_id):
        raise BadArgs(f"run_id {run_id!r} is not a safe name ([A-Za-z0-9._-], at most 64)")
    run = run_id or new_run_id()

    def connect(write: bool) -> LibvirtSession:
        # An IQ-only call never gets write access.
        platform = LibvirtPlatform(
            uri, readonly=not write, state_dir=state_dir, domain_type=domain_type
        )
        return LibvirtSession(platform, run)

    return answer_loop(TABLE, requests, connect, run_id=run, check_mode=check_mode)


def answer_requests(
    uri: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    check_mode: bool = False,
    state_dir: Path | None = None,
    domain_type: str | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`probe` for in-process callers: observations only, never raises for bad input.

    An empty ``run_id`` means none was given. Malformed requests or run ids become error
    observations naming the problem.
    """
    try:
        observations, _changed = probe(
            uri, requests, check_mode=check_mode, run_id=run_id or None, state_dir=state_dir,
            domain_type=domain_type,
        )
    except BadArgs as exc:
        return observations_failed(requests, str(exc))
    return observations
