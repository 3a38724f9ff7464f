"""Patch executors: what patches one host. The orchestrator sees only :class:`PatchExecutor`.

Two exist: the libvirt/KVM executor (``qualification/platforms/libvirt/patch.py``: a real package upgrade
over SSH and a libvirtd restart) and :class:`VsphereStandInExecutor` here, a **stand-in** for
the vSphere simulator, which cannot install anything: it leaves a mark on the host through the
API (custom attribute ``vqual.patch``) that any other client can read, and its "reboot" is a
bounded wait for the simulator to report the host connected. Its name, the evidence and
docs/rolling-patch.md say it is a stand-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from qualification.errors import PlatformError
from qualification.platforms.base import HypervisorPlatform
from qualification.rollout.change import RolloutChange


@runtime_checkable
class PatchExecutor(Protocol):
    """Patches one host at a time.

    ``installed`` returns what the host runs now as ``{name: version}``: package names, and
    ``hypervisor_version`` / ``hypervisor_build`` where the executor knows them; the
    orchestrator compares it with the change's target before and after the patch.
    """

    name: str

    def installed(self, host: str) -> dict[str, str]: ...

    def apply(self, host: str, change: RolloutChange) -> dict[str, Any]:
        """Patch ``host`` to the change's target; return what was done (JSON)."""
        ...

    def reboot(self, host: str, timeout_s: float) -> float:
        """Restart what the patch needs restarted; wait at most ``timeout_s``; seconds taken."""
        ...

    def health(self, host: str) -> dict[str, Any]:
        """The host's health after the patch; ``ok`` says whether it may carry VMs again."""
        ...


def target_mismatches(installed: Mapping[str, str], change: RolloutChange) -> list[str]:
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


def mark_entry(change: RolloutChange) -> str:
    """The stand-in's mark for one patch: ``<change id> name=version ...`` (sorted)."""
    parts = [change.change_id]
    parts += [f"{k}={v}" for k, v in sorted(change.target.packages.items())]
    return " ".join(parts)


def parse_mark(entries: list[str]) -> dict[str, str]:
    """Package versions the marks record; a later entry wins over an earlier one."""
    out: dict[str, str] = {}
    for entry in entries:
        for token in entry.split()[1:]:
            name, sep, version = token.partition("=")
            if sep:
                out[name] = version
    return out


class VsphereStandInExecutor:
    """**Stand-in** executor for VMware's simulator: marks the host, does not patch it.

    ``apply`` appends ``<change id> name=version ...`` to the host's ``vqual.patch`` custom
    attribute; ``installed`` reads the hypervisor version/build the platform reports plus the
    package versions the marks record; ``reboot`` waits (bounded) until the platform reports
    the host connected, because the simulator implements neither ``RebootHost_Task`` nor
    ``DisconnectHost_Task``.

    Args:
        platform_factory: opens a vSphere session (a ``VspherePlatform``).
        poll_s: how often ``reboot`` polls the connection state.
    """

    name = "vsphere-standin"
    stand_in = True

    def __init__(
        self, platform_factory: Callable[[], HypervisorPlatform], *, poll_s: float = 0.2
    ) -> None:
        self._factory = platform_factory
        self._platform: HypervisorPlatform | None = None
        self._poll_s = poll_s

    def _vsphere(self) -> Any:
        if self._platform is None:
            self._platform = self._factory()
        if getattr(self._platform, "platform", None) != "vsphere":
            raise PlatformError(
                f"the vSphere stand-in executor needs a vSphere platform, not "
                f"{getattr(self._platform, 'platform', '?')}"
            )
        # The real adapter object behind a wrapper (tests count calls through one).
        return getattr(self._platform, "wrapped", self._platform)

    def installed(self, host: str) -> dict[str, str]:
        from qualification.platforms.vsphere.adapter import host_product, read_host_mark

        platform = self._vsphere()
        product = host_product(platform, host)
        out = {"hypervisor_version": product["version"], "hypervisor_build": product["build"]}
        out.update(parse_mark(read_host_mark(platform, host)))
        return out

    def apply(self, host: str, change: RolloutChange) -> dict[str, Any]:
        from qualification.platforms.vsphere.adapter import add_host_mark

        entry = mark_entry(change)
        entries = add_host_mark(self._vsphere(), host, entry)
        return {
            "executor": self.name,
            "stand_in": True,
            "what": "custom attribute vqual.patch appended (the simulator cannot install software)",
            "entry": entry,
            "marks": entries,
        }

    def reboot(self, host: str, timeout_s: float) -> float:
        from qualification.platforms.vsphere.adapter import host_connection_state

        platform = self._vsphere()
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            state = host_connection_state(platform, host)
            if state == "connected":
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise PlatformError(
                    f"reboot {host} failed: not connected after {timeout_s:g} s (state {state})"
                )
            time.sleep(self._poll_s)

    def health(self, host: str) -> dict[str, Any]:
        from qualification.platforms.vsphere.adapter import host_connection_state

        platform = self._vsphere()
        state = host_connection_state(platform, host)
        return {"connection_state": state, "ok": state == "connected", "stand_in": True}

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()
            self._platform = None
