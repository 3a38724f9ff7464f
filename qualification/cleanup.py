"""``vqual cleanup RUN_ID``: remove every throwaway VM a run made, on every libvirt target.

A run's throwaway guests are found by what they carry, not by what the run remembers, so
cleanup works after a crash or a kill as well as after a clean end:

- guests with vqual's throwaway tag (``<vqual:throwaway run-id=...>`` in the domain's
  metadata, see :mod:`qualification.platforms.libvirt_guest_oq`) whose run id is RUN_ID;
  the tag lists the files made for the guest (overlay, backup), which are deleted too;
- the OQ lifecycle's throwaway domain (:mod:`qualification.platforms.oq`), which carries no
  tag but is named ``vqual-oq-<run id>`` or ``vqual-oq-<run id>-<n>``: the run id in the
  name is the tag (run ids end in a random part, so another run's name cannot match).

Nothing else is touched. The libvirt targets are the inventory's hosts with a
``vqual_libvirt_uri``, each URI once (guests list their host's URI too).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError
from qualification.spec.change import validate_run_id


@dataclass
class HostCleanup:
    """What cleanup found and did on one libvirt endpoint (password-free)."""

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
    """libvirt URI -> inventory hosts naming it, from ``_meta.hostvars``.

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


def inventory_hostvars(inventory: Path) -> dict[str, dict[str, Any]]:
    """``_meta.hostvars`` of an Ansible inventory (``ansible-inventory --list``).

    Raises:
        BadInputError: the inventory cannot be read.
    """
    if not inventory.exists():
        raise BadInputError(f"inventory {inventory}: no such file or directory")
    binary = Path(sys.executable).parent / "ansible-inventory"
    try:
        done = subprocess.run(
            [
                str(binary if binary.exists() else "ansible-inventory"),
                "-i",
                str(inventory),
                "--list",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BadInputError(f"inventory {inventory}: ansible-inventory failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BadInputError(f"inventory {inventory}: {last}")
    data = json.loads(done.stdout)
    return dict(data.get("_meta", {}).get("hostvars", {}))


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


def cleanup(inventory: Path, run_id: str) -> CleanupResult:
    """Remove every throwaway VM of ``run_id`` on every libvirt target of ``inventory``.

    Raises:
        BadInputError: bad run id or unreadable inventory (nothing was touched).
    """
    validate_run_id(run_id)
    targets = libvirt_targets(inventory_hostvars(inventory))
    return CleanupResult(
        run_id=run_id,
        targets=[cleanup_endpoint(uri, run_id, hosts) for uri, hosts in targets.items()],
    )
