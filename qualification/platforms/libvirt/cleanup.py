"""Cleanup of a run's leftovers on libvirt: tagged throwaway guests, the OQ lifecycle's
throwaway domains and the maintenance markers the run set (``vqual cleanup``, docs/cli.md).

- guests with vqual's throwaway tag (``<vqual:throwaway run-id=...>`` in the domain's
  metadata, see :mod:`qualification.platforms.libvirt.guest_oq`) whose run id is the run's;
  the tag lists the files made for the guest (overlay, backup), which are deleted too;
- the OQ lifecycle's throwaway domain (:mod:`qualification.platforms.oq`), which carries no
  tag but is named ``vqual-oq-<run id>`` or ``vqual-oq-<run id>-<n>``: the run id in the name
  is the tag (run ids end in a random part, so another run's name cannot match);
- maintenance markers (vqual's own, in the state directory, docs/formats.md) that name the
  run: an OQ maintenance round trip writes its run id into the marker it sets, so a run killed
  between entering and leaving maintenance leaves the host marked. Markers without a run id (a
  rolling patch's: its failure policy keeps a failed host in maintenance, and only a person
  takes it out) or of another run are left alone.

The targets are the inventory's hosts with a ``vqual_libvirt_uri``, each URI once (guests list
their host's URI too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from qualification.platforms.base import redact_endpoint
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_oq import cleanup_run
from qualification.platforms.registry import HostCleanup


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
    """Names of the OQ lifecycle's throwaway domains (or VMs) of ``run_id``."""
    return re.compile(rf"^vqual-oq-{re.escape(run_id)}(-[0-9]+)?$")


def cleanup_endpoint(uri: str, run_id: str, hosts: list[str]) -> HostCleanup:
    """Remove ``run_id``'s throwaway guests on one libvirt endpoint; never raises."""
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
