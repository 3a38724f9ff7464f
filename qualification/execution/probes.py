"""Controller-side probes: platform observations made in-process on the controller.

Target-side probes (``host``) run as modules on the target. Platform probes (libvirt,
vSphere, Hyper-V) talk to an API from the controller; the collection's action plugin calls
them here, in-process, exactly as their modules do when delegated to localhost.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def run_controller_probe(
    probe: str,
    requests: Sequence[Mapping[str, Any]],
    *,
    host_vars: Mapping[str, Any],
    run_id: str,
    check_mode: bool,
    data_files: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Answer ``requests`` of one controller-side probe; unknown probes answer ``error``.

    ``data_files`` are the plan's ``[{name, path, digest}]``: a request naming one (the
    vSphere or Hyper-V HCL) gets its content, read again and checked against the approved digest.
    """
    if probe == "libvirt":
        from qualification.platforms.libvirt import answer_requests

        uri = str(host_vars.get("vqual_libvirt_uri") or "")
        if not uri:
            return {
                str(r["key"]): {"error": "no vqual_libvirt_uri set for this target"}
                for r in requests
            }
        pool = host_vars.get("vqual_libvirt_pool")
        if pool:
            # The throwaway OQ domain's disk goes into the site's pool (QEMU needs one for
            # snapshots of a running domain); the spec stays free of site facts.
            requests = [
                {**r, "args": {**dict(r.get("args") or {}), "pool": pool}}
                if r.get("method") == "oq_lifecycle" and "pool" not in (r.get("args") or {})
                else r
                for r in requests
            ]
        guest_oq = host_vars.get("vqual_libvirt_oq")
        if isinstance(guest_oq, Mapping):
            # Template and destination of the OQ on booted throwaway guests: site facts.
            requests = [
                {**r, "args": {**dict(guest_oq), **dict(r.get("args") or {})}}
                if r.get("method") in ("oq_guest_migrate", "oq_backup_restore", "oq_guest_cycle")
                else r
                for r in requests
            ]
        domain_type = host_vars.get("vqual_libvirt_domain_type")
        return answer_requests(
            uri, requests, run_id=run_id, check_mode=check_mode,
            domain_type=str(domain_type) if domain_type else None,
        )
    if probe == "vsphere":
        from qualification.platforms.vsphere import answer_vsphere

        return answer_vsphere(
            requests, host_vars=host_vars, run_id=run_id, check_mode=check_mode, data_files=data_files
        )
    if probe == "hyperv":
        from qualification.platforms.hyperv import answer_hyperv

        return answer_hyperv(
            requests, host_vars=host_vars, run_id=run_id, check_mode=check_mode, data_files=data_files
        )
    return {
        str(r["key"]): {"error": f"no controller-side probe named {probe!r}"} for r in requests
    }
