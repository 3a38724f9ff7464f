"""Check types for redundant paths on a Linux host (URS-CL-03): bonds and teams, multipath.

Answered by the host probe's ``bonds`` method (``/proc/net/bonding``, and ``teamdctl <team>
state dump`` for teamd's teams, judged as bonds: runner as mode, ports as members) and
``multipath`` method (``multipathd show maps json``, else sysfs); see
``plugins/module_utils/host_paths.py``. Without ``name``/``device`` a test judges every bond,
team or map of the host at once, by the worst of them: the smallest member or path count,
every member down and every failed path (named ``bond/member`` and ``map: path (states)``).
The values each verdict rests on go into the record as ``measured``: per bond or team its mode
(a team also its runner) and each member's link state, per map each path's device-mapper,
device and checker state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from qualification.checks.base import Observed
from qualification.checks.host import HostCheck
from qualification.checks.registry import register

BOND_FIELDS = ("mode", "member_count", "members_up", "members_down")
MULTIPATH_FIELDS = ("path_count", "active_paths", "failed_paths")


def _one_of(param: str, options: tuple[str, ...]) -> Callable[[Mapping[str, Any]], str | None]:
    def check(params: Mapping[str, Any]) -> str | None:
        if params.get(param) not in options:
            return f"parameter {param} must be one of {', '.join(options)}"
        return None

    return check


def _selected(
    found: Mapping[str, Any], name: str | None, what: str
) -> tuple[dict[str, Any], str | None]:
    """The bonds/maps a test judges, or a reason why there are none."""
    if name is not None:
        if name in found:
            return {name: found[name]}, None
        return {}, f"no {what} {name} on this host (found: {', '.join(sorted(found)) or 'none'})"
    if not found:
        return {}, f"no {what} on this host"
    return dict(found), None


def _measured_bond(bond: Mapping[str, Any]) -> dict[str, Any]:
    measured = {
        "mode": bond.get("mode"),
        "active_member": bond.get("active_member"),
        "members": {m["name"]: m.get("mii_status") for m in bond.get("members") or []},
    }
    if "runner" in bond:  # a team: teamd's runner name and why teamd did not answer, if so
        measured["runner"] = bond["runner"]
        if bond.get("error"):
            measured["error"] = bond["error"]
    return measured


def _read_bond(value: Any, params: Mapping[str, Any]) -> Any:
    # Bonds and teams are both network devices: their names never collide on one host.
    found = {**((value or {}).get("bonds") or {}), **((value or {}).get("teams") or {})}
    bonds, missing = _selected(found, params.get("name"), "bond or team")
    field = params["field"]
    measured = {name: _measured_bond(bond) for name, bond in bonds.items()}
    if missing:
        return Observed(None, missing, measured)
    down = [f"{name}/{m}" for name, bond in bonds.items() for m in bond.get("members_down") or []]
    observed: Any
    if field == "mode":
        modes = sorted({str(b.get("mode")) for b in bonds.values()})
        observed = modes[0] if len(modes) == 1 else modes
    elif field == "member_count":
        observed = min(int(b.get("member_count") or 0) for b in bonds.values())
    elif field == "members_up":
        observed = min(len(b.get("members_up") or []) for b in bonds.values())
    else:
        observed = down
    reason = f"member link down: {', '.join(down)}" if down else None
    return Observed(observed, reason, measured)


def _read_multipath(value: Any, params: Mapping[str, Any]) -> Any:
    maps, missing = _selected(
        (value or {}).get("maps") or {}, params.get("device"), "multipath device"
    )
    measured = {
        name: {
            "wwid": info.get("wwid"),
            "paths": {
                str(p.get("dev")): "/".join(str(p.get(k)) for k in ("dm_st", "dev_st", "chk_st"))
                for p in info.get("paths") or []
            },
        }
        for name, info in maps.items()
    }
    if missing:
        return Observed(None, missing, measured)
    failed = [f"{name}: {p}" for name, info in maps.items() for p in info.get("failed_paths") or []]
    field = params["field"]
    observed: Any
    if field == "failed_paths":
        observed = failed
    else:
        observed = min(int(info.get(field) or 0) for info in maps.values())
    reason = f"failed path: {'; '.join(failed)}" if failed else None
    return Observed(observed, reason, measured)


CHECKS = (
    HostCheck(
        "bond",
        "A bonded or teamed NIC from /proc/net/bonding and teamdctl (every bond and team, "
        "or `name`): `field` mode, member_count, members_up (counts: the smallest over them) "
        "or members_down (bond/member names); measured: each one's mode (a team's runner) "
        "and each member's link state",
        "bonds",
        (("field", (str,), True), ("name", (str,), False)),
        reader=_read_bond,
        extra=_one_of("field", BOND_FIELDS),
    ),
    HostCheck(
        "multipath",
        "Multipath devices from multipathd (else sysfs) (every map, or `device`): `field` "
        "path_count, active_paths (the smallest over the maps) or failed_paths (map: path "
        "(dm/device/checker state)); measured: each path's states",
        "multipath",
        (("field", (str,), True), ("device", (str,), False)),
        reader=_read_multipath,
        extra=_one_of("field", MULTIPATH_FIELDS),
    ),
)

for _check in CHECKS:
    register(_check)
