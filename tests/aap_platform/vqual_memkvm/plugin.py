"""libvirt's in-process test driver as the cluster, a JSON file as the hosts' package database.

This machine has no hypervisor host whose packages could be upgraded outside the lab, so the
patch executor is a stand-in (named so) that keeps each host's packages in a file, as
``MemoryExecutor`` in tests/unit/rollout/test_orchestrator_verdict.py keeps them in a dict; the
platform (maintenance, VMs, migrations) is real libvirt through the product's libvirt cluster.
It manages a cluster only when named with ``--platform-host`` / ``platform_host``: the
inventory host whose ``vqual_memkvm_packages`` names the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualification.platforms.registry import PatchSetup, PlatformPlugin


class FileExecutor:
    """Stand-in for the hosts' package managers: ``{host: {package: version}}`` in a file."""

    name = "file-stand-in"
    stand_in = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        return data

    def installed(self, host: str) -> dict[str, str]:
        return dict(self._all()[host])

    def apply(self, host: str, change: Any) -> dict[str, Any]:
        packages = self._all()
        before = dict(packages[host])
        packages[host].update(change.target.packages)
        self.path.write_text(json.dumps(packages))
        return {"before": before, "after": dict(packages[host])}

    def reboot(self, host: str, timeout_s: float) -> float:
        return 0.0

    def health(self, host: str) -> dict[str, Any]:
        return {"ok": True}


class MemKvmPlugin(PlatformPlugin):
    name = "memkvm"
    title = "libvirt test driver with a file package database (tests only)"

    def patch_setup(self, hostvars: Mapping[str, Mapping[str, Any]], cluster: str,
                    platform_host: str | None, state_dir: Path | None) -> PatchSetup | None:
        packages = (hostvars.get(platform_host) or {}).get("vqual_memkvm_packages") \
            if platform_host else None
        if not packages:
            return None
        from qualification.platforms.libvirt.patch import platform_factory

        return PatchSetup(platform_factory(hostvars, cluster, state_dir=state_dir),
                          FileExecutor(Path(str(packages))))


PLUGIN = MemKvmPlugin()
