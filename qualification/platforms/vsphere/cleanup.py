"""Cleanup of a run's throwaway VMs on vSphere (``vqual cleanup``, docs/cli.md).

VMs named ``vqual-tmp-<run id>-*`` whose ``vqual.throwaway`` tag (extraConfig, or the custom
attribute on a vCenter) is the run's (:mod:`qualification.platforms.vsphere.oq`), and the OQ
lifecycle's ``vqual-oq-<run id>[-<n>]``: powered off, their snapshots dropped, deleted with
their files. The targets are the inventory's hosts with a ``vqual_vsphere_host``, each
endpoint once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qualification.errors import BadInputError, PlatformError
from qualification.platforms.libvirt.cleanup import lifecycle_names_pattern
from qualification.platforms.registry import HostCleanup, RenderProblem
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.endpoint import Endpoint, endpoint_from_vars
from qualification.platforms.vsphere.oq import TAG_KEY, is_run_throwaway, remove_vm


def vsphere_hosts(hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Inventory hosts with a ``vqual_vsphere_host``, sorted."""
    return sorted(h for h, v in hostvars.items() if v.get("vqual_vsphere_host"))


def cleanup_vsphere(endpoint: Endpoint, run_id: str, hosts: list[str]) -> HostCleanup:
    """Remove ``run_id``'s throwaway VMs on one vSphere endpoint; never raises."""
    result = HostCleanup(endpoint=str(endpoint.url), hosts=hosts)
    pattern = lifecycle_names_pattern(run_id)
    try:
        with VspherePlatform(endpoint) as platform:
            for vm in platform.vm_tags(TAG_KEY):
                if not (is_run_throwaway(vm, run_id) or pattern.match(vm["name"])):
                    continue
                try:
                    remove_vm(platform, vm["name"])
                    result.removed.append(vm["name"])
                except PlatformError as exc:
                    result.errors.append(exc.one_line())
    except PlatformError as exc:
        result.errors.append(exc.one_line())
    return result


def vsphere_cleanups(
    hostvars: Mapping[str, Mapping[str, Any]], run_id: str,
    failures: Sequence[RenderProblem] = (),
) -> list[HostCleanup]:
    """Cleanup of ``run_id`` on every vSphere endpoint of the inventory, each once.

    ``hostvars`` are rendered; a host with a ``vqual_vsphere_*`` variable among ``failures``
    is reported, not connected to.
    """
    unrendered: dict[str, RenderProblem] = {}
    for failure in failures:
        if failure.variable.startswith("vqual_vsphere_"):
            unrendered.setdefault(failure.host, failure)
    endpoints: dict[tuple[str, int, str], tuple[Endpoint, list[str]]] = {}
    failed: list[HostCleanup] = [
        HostCleanup(
            endpoint=str(hostvars.get(host, {}).get("vqual_vsphere_host") or host),
            hosts=[host],
            errors=[f"inventory {failure.one_line()}"],
        )
        for host, failure in sorted(unrendered.items())
    ]
    for host in vsphere_hosts(hostvars):
        if host in unrendered:
            continue
        try:
            ep = endpoint_from_vars(hostvars[host])
        except BadInputError as exc:
            failed.append(
                HostCleanup(
                    endpoint=str(hostvars[host].get("vqual_vsphere_host")),
                    hosts=[host],
                    errors=[f"inventory host {host}: {exc.one_line()}"],
                )
            )
            continue
        # One vCenter scoped to two clusters is one endpoint: its VMs are looked at once.
        key = (ep.host, ep.port, ep.username)
        endpoints.setdefault(key, (ep, []))[1].append(host)
    return failed + [cleanup_vsphere(ep, run_id, hosts) for ep, hosts in endpoints.values()]
