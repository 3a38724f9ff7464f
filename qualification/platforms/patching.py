"""Patch executors: what patches one host. The orchestrator sees only :class:`PatchExecutor`.

The platforms implement it and the rollout drives it, so it lives here, below both; an
executor reads a change through :class:`PatchChange`, which the rollout's
:class:`~qualification.rollout.change.RolloutChange` is.

Each platform plug-in brings its own (``PlatformPlugin.patch_setup``): the libvirt/KVM executor
(``qualification/platforms/libvirt/patch.py``: a real package upgrade over SSH and a libvirtd
restart) and the vSphere simulator's **stand-in** (``qualification/platforms/vsphere/patch.py``,
which cannot install anything: it leaves a mark on the host through the API). Its name, the
evidence and docs/rolling-patch.md say it is a stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class PatchTarget(Protocol):
    """What a host must run after its patch (``rollout.change.ChangeTarget``)."""

    @property
    def hypervisor_version(self) -> str | None: ...

    @property
    def hypervisor_build(self) -> str | None: ...

    @property
    def packages(self) -> Mapping[str, str]: ...


class PatchChange(Protocol):
    """What an executor reads of a rolling-patch change (``rollout.change.RolloutChange``)."""

    @property
    def change_id(self) -> str: ...

    @property
    def target(self) -> PatchTarget: ...

    @property
    def step_timeout_s(self) -> float: ...


@runtime_checkable
class PatchExecutor(Protocol):
    """Patches one host at a time.

    ``installed`` returns what the host runs now as ``{name: version}``: package names, and
    ``hypervisor_version`` / ``hypervisor_build`` where the executor knows them; the
    orchestrator compares it with the change's target before and after the patch.
    """

    name: str

    def installed(self, host: str) -> dict[str, str]: ...

    def apply(self, host: str, change: PatchChange) -> dict[str, Any]:
        """Patch ``host`` to the change's target; return what was done (JSON)."""
        ...

    def reboot(self, host: str, timeout_s: float) -> float:
        """Restart what the patch needs restarted; wait at most ``timeout_s``; seconds taken."""
        ...

    def health(self, host: str) -> dict[str, Any]:
        """The host's health after the patch; ``ok`` says whether it may carry VMs again."""
        ...


def target_mismatches(installed: Mapping[str, str], change: PatchChange) -> list[str]:
    """What of the change's target the host does not run yet (empty: at target)."""
    wanted: dict[str, str] = {}
    if change.target.hypervisor_version:
        wanted["hypervisor_version"] = change.target.hypervisor_version
    if change.target.hypervisor_build:
        wanted["hypervisor_build"] = change.target.hypervisor_build
    wanted.update(change.target.packages)
    return [
        f"{name} is {installed.get(name, 'not installed')}, target {version}"
        for name, version in sorted(wanted.items())
        if installed.get(name) != version
    ]
