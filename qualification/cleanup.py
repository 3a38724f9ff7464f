"""``vqual cleanup RUN_ID``: remove what a run left behind (throwaway VMs, maintenance
markers) on every platform target of an inventory.

A run's throwaway VMs are found by what they carry, not by what the run remembers, so
cleanup works after a crash or a kill as well as after a clean end. What each platform
removes is its plug-in's ``cleanup`` hook (``qualification/platforms/registry.py``): libvirt
(:mod:`qualification.platforms.libvirt.cleanup`: tagged throwaway guests and their files, the
OQ lifecycle's ``vqual-oq-<run id>[-<n>]`` domains), vSphere
(:mod:`qualification.platforms.vsphere.cleanup`: tagged ``vqual-tmp-<run id>-*`` VMs and the
lifecycle's); a platform without the hook (Hyper-V) is skipped. Then each plug-in's
``cleanup_state``: libvirt's maintenance markers in the state directory that name the run.

Nothing else is touched. The targets are the inventory's hosts with a platform's endpoint
variables, each endpoint once, read with
:func:`qualification.execution.inventory.read_hostvars`: rendered by Ansible (templates,
lookups such as the lab's password files, vault), in memory only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, NotSupported
from qualification.execution.inventory import RenderFailure, VaultOptions, read_hostvars
from qualification.platforms import registry
from qualification.platforms.registry import HostCleanup
from qualification.spec.change import validate_run_id

__all__ = ["CleanupResult", "HostCleanup", "cleanup"]


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


def cleanup(
    inventory: Path, run_id: str, state_dir: Path | None = None,
    vault: VaultOptions | None = None,
) -> CleanupResult:
    """Remove every throwaway VM of ``run_id`` on every platform target of ``inventory``, and
    what it left in ``state_dir`` (when given).

    Raises:
        BadInputError: bad run id, unreadable inventory, or an endpoint variable a platform
            needs that cannot be rendered (nothing was touched).
    """
    validate_run_id(run_id)
    plugins = registry.plugins()
    failures: list[RenderFailure] = []
    names = tuple(dict.fromkeys(v for p in plugins for v in p.endpoint_vars))
    hostvars = read_hostvars(inventory, names=names, vault=vault, failures=failures)
    targets: list[HostCleanup] = []
    for plugin in plugins:
        try:
            targets += plugin.cleanup(hostvars, run_id, failures=failures)
        except NotSupported:
            continue  # nothing of this platform to clean (its reason is in its docs)
        except BadInputError as exc:
            raise BadInputError(exc.message, where=str(inventory)) from None
    if state_dir is not None:
        for plugin in plugins:
            left = plugin.cleanup_state(state_dir, run_id)
            if left is not None:
                targets.append(left)
    return CleanupResult(run_id=run_id, targets=targets)
