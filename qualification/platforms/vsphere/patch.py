"""The rolling patch's **stand-in** executor for VMware's simulator, which cannot install
anything: :class:`VsphereStandInExecutor` leaves a mark on the host through the API (custom
attribute ``vqual.patch`` on a vCenter, advanced option ``UserVars.vqual.patch`` on a standalone
ESXi, a JSON list of ``<change id> name=version ...`` entries) that any other client can read,
and its "reboot" is a bounded wait for the simulator to report the host connected. Its name,
the evidence and docs/rolling-patch.md say it is a stand-in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from qualification.errors import PlatformError
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.patching import PatchChange
from qualification.platforms.vsphere.adapter import VspherePlatform
from qualification.platforms.vsphere.connection import _text, vim

# --- host marks ------------------------------------------------------------------------------
# A custom attribute on the HostSystem (vCenter) or a host advanced option (standalone ESXi),
# holding a JSON list of strings; the same place the lab's simulator helpers read.

HOST_MARK_FIELD = "vqual.patch"
HOST_MARK_OPTION = "UserVars.vqual.patch"


def read_host_mark(platform: VspherePlatform, host: str) -> list[str]:
    """The entries of a host's ``vqual.patch`` mark, oldest first (empty if none)."""
    obj = platform._host_obj(host)
    cfm = platform.content.customFieldsManager
    raw = ""
    if cfm is not None:
        keys = [f.key for f in cfm.field or [] if f.name == HOST_MARK_FIELD]
        values = platform._call("read", f"custom values of {host}", lambda: obj.customValue)
        for value in values or []:
            if keys and value.key == keys[0]:
                raw = str(value.value)
    else:
        try:
            opts = platform._call(
                "read", f"option of {host}", obj.configManager.advancedOption.QueryOptions,
                HOST_MARK_OPTION,
            )
        except PlatformError:
            opts = []
        raw = next((str(o.value) for o in opts or [] if o.key == HOST_MARK_OPTION), "")
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError:
        entries = None
    if not isinstance(entries, list):
        raise PlatformError(f"{host}: patch mark is not a JSON list", where=platform.endpoint)
    return [str(e) for e in entries]


def add_host_mark(platform: VspherePlatform, host: str, entry: str) -> list[str]:
    """Append ``entry`` to a host's ``vqual.patch`` mark; return the entries now recorded."""
    obj = platform._host_obj(host)
    entries = read_host_mark(platform, host) + [entry]
    value = json.dumps(entries)
    cfm = platform.content.customFieldsManager
    if cfm is not None:
        field_def = next((f for f in cfm.field or [] if f.name == HOST_MARK_FIELD), None)
        if field_def is None:
            field_def = platform._call(
                "define", HOST_MARK_FIELD, cfm.AddCustomFieldDef,
                name=HOST_MARK_FIELD, moType=vim.HostSystem,
            )
        platform._call("set mark on", host, cfm.SetField, entity=obj, key=field_def.key, value=value)
    else:
        option: Any = vim.option.OptionValue
        platform._call(
            "set mark on", host, obj.configManager.advancedOption.UpdateOptions,
            changedValue=[option(key=HOST_MARK_OPTION, value=value)],
        )
    return entries


def host_connection_state(platform: VspherePlatform, host: str) -> str:
    """``runtime.connectionState`` of a host (``connected``, ``disconnected``, ``notResponding``)."""
    obj = platform._host_obj(host)
    return str(platform._call("read", f"connection state of {host}",
                              lambda: obj.runtime.connectionState))


def host_product(platform: VspherePlatform, host: str) -> dict[str, str]:
    """A host's product version and build from ``summary.config.product`` (one property read,
    cheaper than the full host facts)."""
    obj = platform._host_obj(host)
    product = platform._call("read", f"product of {host}", lambda: obj.summary.config.product)
    return {"version": _text(getattr(product, "version", None)),
            "build": _text(getattr(product, "build", None))}


def mark_entry(change: PatchChange) -> str:
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
        platform = self._vsphere()
        product = host_product(platform, host)
        out = {"hypervisor_version": product["version"], "hypervisor_build": product["build"]}
        out.update(parse_mark(read_host_mark(platform, host)))
        return out

    def apply(self, host: str, change: PatchChange) -> dict[str, Any]:
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
        platform = self._vsphere()
        state = host_connection_state(platform, host)
        return {"connection_state": state, "ok": state == "connected", "stand_in": True}

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()
            self._platform = None
