"""What the ``hyperv`` probe answers: its IQ observations and OQ scenario, as one table.

The table is run by the generic request loop (:func:`qualification.platforms.base.answer_loop`)
over one WinRM shell per call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from qualification.checks.vocabulary import READ_CMDLETS
from qualification.platforms.base import BadArgs, ObservationTable, OqContext, answer_loop
from qualification.platforms.base import probe_observation as _observation
from qualification.platforms.hyperv.adapter import HypervPlatform
from qualification.platforms.hyperv.endpoint import Endpoint
from qualification.platforms.oq import lifecycle_observation


def _raw(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class HypervSession:
    """One probe call's WinRM shell."""

    def __init__(self, platform: HypervPlatform, secrets: tuple[str, ...]) -> None:
        self.platform = platform
        self.secrets = secrets

    @property
    def where(self) -> str:
        return self.platform.endpoint.url

    def close(self) -> None:
        self.platform.close()


# -- IQ: one read per method --------------------------------------------------------------------


def _about(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.platform.about().to_json()
    return _observation(value=value, raw=_raw(value),
                        method=f"Get-ComputerInfo | ConvertTo-Json {session.where}")


def _host(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.platform.host_details()
    return _observation(value=value, raw=_raw(value),
                        method=f"Get-ComputerInfo, Get-VMHost | ConvertTo-Json {session.where}")


def _cmdlet(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    name = args.get("cmdlet")
    if not isinstance(name, str) or name not in READ_CMDLETS:
        raise BadArgs(f"cmdlet: argument 'cmdlet' must be one of {', '.join(READ_CMDLETS)}")
    value = session.platform.read(name)
    return _observation(value=value, raw=_raw(value),
                        method=f"{READ_CMDLETS[name]} | ConvertTo-Json {session.where}")


def _features(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.platform.features()
    return _observation(value=value, raw=_raw(value),
                        method=f"Get-WindowsFeature | ConvertTo-Json {session.where}")


def _vswitches(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = session.platform.vswitches()
    return _observation(value=value, raw=_raw(value),
                        method=f"Get-VMSwitch | ConvertTo-Json {session.where}")


def _hcl(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    entries = args.get("entries")
    if not isinstance(entries, list):
        raise BadArgs("hcl: no HCL entries (the spec's data file was not resolved)")
    d = session.platform.host_details()
    hosts = [{k: d[k] for k in ("name", "hardware", "bios", "product")}]
    value = {"hcl": args.get("hcl"), "digest": args.get("digest"), "hosts": hosts,
             "entries": entries}
    return _observation(
        value=value,
        raw=_raw(hosts),
        method=f"Get-ComputerInfo (Cs*, Bios*, Windows*) against HCL {args.get('hcl')} "
        f"{session.where}",
    )


def _vms(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    value = [v.to_json() for v in session.platform.vms()]
    return _observation(value=value, raw=_raw(value), method=f"Get-VM | ConvertTo-Json {session.where}")


def _vm(session: HypervSession, args: Mapping[str, Any]) -> dict[str, Any]:
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise BadArgs("vm: argument 'name' (a VM name) is required")
    value = session.platform.vm_details(name)
    return _observation(value=value, raw=_raw(value),
                        method=f"Get-VM {name} | ConvertTo-Json {session.where}")


# -- OQ ----------------------------------------------------------------------------------------


def _lifecycle(session: HypervSession, ctx: OqContext, args: Mapping[str, Any]) -> dict[str, Any]:
    suffix = "".join(c for c in ctx.run_id if c.isalnum() or c in "-_") or "run"
    vm = f"vqual-oq-{suffix}" + (f"-{ctx.position}" if ctx.position > 1 else "")
    return lifecycle_observation(session.platform, vm, args, "Hyper-V", session.where)


def _changed(observation: Mapping[str, Any]) -> bool:
    # On the stand-in every step is not-executed: nothing changed.
    return any(a.get("verdict") != "not-executed" for a in observation.get("actions") or ())


TABLE: ObservationTable[HypervSession] = ObservationTable(
    probe="hyperv",
    iq={
        "about": _about,
        "host": _host,
        "cmdlet": _cmdlet,
        "features": _features,
        "vswitches": _vswitches,
        "hcl": _hcl,
        "vms": _vms,
        "vm": _vm,
    },
    oq={"oq_lifecycle": _lifecycle},
    changed=_changed,
)
IQ_METHODS = tuple(TABLE.iq)
OQ_METHODS = tuple(TABLE.oq)


def probe(
    endpoint: Endpoint,
    requests: Sequence[Mapping[str, Any]],
    *,
    check_mode: bool = False,
    run_id: str = "",
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Answer every request over one WinRM shell.

    Returns:
        ``({key: observation}, changed)``. A connection or login failure makes every
        observation an ``error`` with the one-line reason (no password); nothing here raises
        for a platform failure.
    """
    secrets = tuple(s for s in (endpoint.password,) if s)
    return answer_loop(
        TABLE, requests, lambda _write: HypervSession(HypervPlatform(endpoint), secrets),
        run_id=run_id, check_mode=check_mode, secrets=secrets,
    )
