"""``vqual cleanup RUN_ID``: remove every throwaway VM a run made, on every libvirt and vSphere
target of an inventory.

A run's throwaway VMs are found by what they carry, not by what the run remembers, so
cleanup works after a crash or a kill as well as after a clean end:

- libvirt: guests with vqual's throwaway tag (``<vqual:throwaway run-id=...>`` in the domain's
  metadata, see :mod:`qualification.platforms.libvirt_guest_oq`) whose run id is RUN_ID;
  the tag lists the files made for the guest (overlay, backup), which are deleted too;
- libvirt and vSphere: the OQ lifecycle's throwaway VM (:mod:`qualification.platforms.oq`),
  which carries no tag but is named ``vqual-oq-<run id>`` or ``vqual-oq-<run id>-<n>``: the
  run id in the name is the tag (run ids end in a random part, so another run's name cannot
  match);
- vSphere: VMs named ``vqual-tmp-<run id>-*`` whose ``vqual.throwaway`` tag (extraConfig, or
  the custom attribute on a vCenter) is RUN_ID (:mod:`qualification.platforms.vsphere_oq`);
  they are powered off, their snapshots dropped, and deleted with their files.

- libvirt: maintenance markers (vqual's own, in the state directory, docs/formats.md) that
  name RUN_ID: an OQ maintenance round trip writes its run id into the marker it sets, so a
  run killed between entering and leaving maintenance leaves the host marked. Markers without
  a run id (a rolling patch's: its failure policy keeps a failed host in maintenance, and
  only a person takes it out) or of another run are left alone.

Nothing else is touched. The libvirt targets are the inventory's hosts with a
``vqual_libvirt_uri``, each URI once (guests list their host's URI too); the vSphere targets
are its hosts with a ``vqual_vsphere_host``, each endpoint once. The variables are read
with :func:`qualification.execution.inventory.read_hostvars`: rendered by Ansible (templates,
lookups such as the lab's password files, vault), in memory only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from qualification.execution.inventory import RenderFailure, VaultOptions, read_hostvars
from qualification.spec.change import validate_run_id


@dataclass
class HostCleanup:
    """What cleanup found and did on one libvirt or vSphere endpoint (password-free)."""

    endpoint: str
    hosts: list[str]
    removed: list[str] = field(default_factory=list)
    files_left: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class CleanupResult:
    """Cleanup of one run over an inventory."""

    run_id: str
    targets: list[HostCleanup]

    @property
    def removed(self) -> list[str]:
        return [name for t in self.targets for name in t.removed]

    @property
    def ok(self) -> bool:
        return not any(t.errors or t.files_left for t in self.targets)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "vqual.cleanup/v1",
            "run_id": self.run_id,
            "ok": self.ok,
            "removed": self.removed,
            "targets": [asdict(t) for t in self.targets],
        }


def libvirt_targets(hostvars: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """libvirt URI -> inventory hosts naming it, from rendered host variables.

    Raises:
        BadInputError: a ``vqual_libvirt_uri`` is not a plain string (e.g. unrendered Jinja).
    """
    targets: dict[str, list[str]] = {}
    for host, variables in sorted(hostvars.items()):
        uri = variables.get("vqual_libvirt_uri")
        if uri is None or uri == "":
            continue
        if not isinstance(uri, str) or "{{" in uri:
            raise BadInputError(f"inventory host {host}: vqual_libvirt_uri is not a plain URI")
        targets.setdefault(uri, []).append(host)
    return targets


def lifecycle_names_pattern(run_id: str) -> re.Pattern[str]:
    """Names of the OQ lifecycle's throwaway domains of ``run_id``."""
    return re.compile(rf"^vqual-oq-{re.escape(run_id)}(-[0-9]+)?$")


def cleanup_endpoint(uri: str, run_id: str, hosts: list[str]) -> HostCleanup:
    """Remove ``run_id``'s throwaway guests on one libvirt endpoint; never raises."""
    from qualification.platforms.base import redact_endpoint
    from qualification.platforms.libvirt import LibvirtPlatform
    from qualification.platforms.libvirt_guest_oq import cleanup_run

    report = cleanup_run(uri, run_id)
    result = HostCleanup(
        endpoint=redact_endpoint(uri),
        hosts=hosts,
        removed=list(report.removed),
        files_left=list(report.files_left),
        errors=list(report.errors),
    )
    if report.errors and not report.removed and "connect failed" in " ".join(report.errors):
        return result  # unreachable: the lifecycle pass would only repeat the error
    pattern = lifecycle_names_pattern(run_id)
    try:
        with LibvirtPlatform(uri) as platform:
            for vm in platform.vms():
                if not pattern.match(vm.name):
                    continue
                try:
                    if platform.vm(vm.name).power_state != "stopped":
                        platform.power_off(vm.name)
                    platform.delete_vm(vm.name, delete_storage=True)
                    result.removed.append(vm.name)
                except PlatformError as exc:
                    result.errors.append(exc.one_line())
    except PlatformError as exc:
        result.errors.append(exc.one_line())
    return result


#: The variables of a vSphere target (``endpoint_from_vars``), rendered for cleanup.
VSPHERE_VARS = (
    "vqual_vsphere_host",
    "vqual_vsphere_port",
    "vqual_vsphere_username",
    "vqual_vsphere_password",
    "vqual_vsphere_validate_certs",
    "vqual_vsphere_ca_file",
    "vqual_vsphere_datacenter",
    "vqual_vsphere_cluster",
)


def vsphere_hosts(hostvars: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Inventory hosts with a ``vqual_vsphere_host``, sorted."""
    return sorted(h for h, v in hostvars.items() if v.get("vqual_vsphere_host"))


def cleanup_vsphere(endpoint: Any, run_id: str, hosts: list[str]) -> HostCleanup:
    """Remove ``run_id``'s throwaway VMs on one vSphere endpoint; never raises.

    ``endpoint`` is a :class:`qualification.platforms.vsphere.Endpoint`.
    """
    from qualification.platforms.vsphere import VspherePlatform
    from qualification.platforms.vsphere_oq import TAG_KEY, is_run_throwaway, remove_vm

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
    failures: Sequence[RenderFailure] = (),
) -> list[HostCleanup]:
    """Cleanup of ``run_id`` on every vSphere endpoint of the inventory, each once.

    ``hostvars`` are rendered (:func:`read_hostvars`); a host with a ``vqual_vsphere_*``
    variable among ``failures`` is reported, not connected to.
    """
    from qualification.platforms.vsphere import endpoint_from_vars

    unrendered: dict[str, RenderFailure] = {}
    for failure in failures:
        if failure.variable.startswith("vqual_vsphere_"):
            unrendered.setdefault(failure.host, failure)
    endpoints: dict[tuple[str, int, str], tuple[Any, list[str]]] = {}
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


def cleanup_maintenance_markers(state_dir: Path, run_id: str) -> HostCleanup | None:
    """Remove the libvirt maintenance markers ``run_id`` set (None: there are none).

    A marker that cannot be read is reported and kept: it may be a person's.
    """
    directory = state_dir / "platforms" / "libvirt" / "maintenance"
    if not directory.is_dir():
        return None
    found = HostCleanup(endpoint=f"maintenance markers in {directory}", hosts=[])
    for marker in sorted(directory.glob("*.json")):
        try:
            body = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            found.errors.append(f"{marker.name}: unreadable ({exc.__class__.__name__}), kept")
            continue
        if not isinstance(body, dict) or body.get("run_id") != run_id:
            continue
        host = str(body.get("host") or marker.stem)
        found.hosts.append(host)
        try:
            marker.unlink()
        except OSError as exc:
            found.errors.append(f"{marker.name}: {exc.strerror or exc}")
        else:
            found.removed.append(f"maintenance of {host}")
    return found if found.hosts or found.errors else None


def cleanup(
    inventory: Path, run_id: str, state_dir: Path | None = None,
    vault: VaultOptions | None = None,
) -> CleanupResult:
    """Remove every throwaway VM of ``run_id`` on every libvirt and vSphere target of
    ``inventory``, and the libvirt maintenance markers it set (in ``state_dir``, when given).

    Raises:
        BadInputError: bad run id, unreadable inventory, or a ``vqual_libvirt_uri`` that
            cannot be rendered (nothing was touched).
    """
    validate_run_id(run_id)
    failures: list[RenderFailure] = []
    hostvars = read_hostvars(inventory, names=("vqual_libvirt_uri", *VSPHERE_VARS),
                             vault=vault, failures=failures)
    for failure in failures:
        if failure.variable == "vqual_libvirt_uri":
            raise BadInputError(failure.one_line(), where=str(inventory))
    targets = libvirt_targets(hostvars)
    markers = cleanup_maintenance_markers(state_dir, run_id) if state_dir is not None else None
    return CleanupResult(
        run_id=run_id,
        targets=[cleanup_endpoint(uri, run_id, hosts) for uri, hosts in targets.items()]
        + vsphere_cleanups(hostvars, run_id, failures)
        + ([markers] if markers is not None else []),
    )
