"""Check types for redundant paths of vSphere hosts (URS-CL-03), answered by probe
``vsphere`` method ``paths`` (``qualification/platforms/vsphere/paths.py``).

``vsphere_uplinks`` judges every standard vSwitch of every host in scope (or those named
``vswitch``) by the worst of them: the fewest uplinks, the fewest active uplinks, and every
uplink without a link (``host/vSwitch/vmnic``). ``vsphere_datastore_paths`` judges the SCSI
LUNs that back datastores (VMFS extents), or with ``all_luns`` every LUN of every host: the
fewest working paths (active or standby) and every failed path (``host/lun/path (state)``).
A datastore backed by no LUN (NFS, vSAN, the simulator's local directories) has no SCSI
paths: when no datastore in scope has any, the test is ``not-executed`` saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, StepNotExecuted
from qualification.checks.registry import register

UPLINK_FIELDS = ("uplinks", "active_uplinks", "links_down")
DATASTORE_PATH_FIELDS = ("working_paths", "failed_paths")


def _params_error(
    name: str, params: Mapping[str, Any], fields: tuple[str, ...], optional: Mapping[str, type]
) -> str | None:
    unknown = sorted(set(params) - {"field", *optional})
    if unknown:
        return f"{name}: unknown parameter(s) {', '.join(unknown)}"
    if params.get("field") not in fields:
        return f"{name}: parameter field must be one of {', '.join(fields)}"
    for key, kind in optional.items():
        if key in params and (not isinstance(params[key], kind) or params[key] in ("", None)):
            return f"{name}: parameter {key} must be a non-empty {kind.__name__}"
    return None


def _fewest(counts: Mapping[str, int], detail: Mapping[str, list[str]]) -> tuple[int, str]:
    low = min(counts.values())
    where = [f"{k} ({', '.join(detail[k]) or 'none'})" for k, v in counts.items() if v == low]
    return low, f"fewest: {'; '.join(where)}"


@dataclass
class VsphereUplinks:
    """Uplinks of the standard vSwitches of each host."""

    name: str = "vsphere_uplinks"
    description: str = (
        "uplinks of every standard vSwitch of each host (or `vswitch`): `field` uplinks, "
        "active_uplinks (the fewest over the vSwitches) or links_down (host/vSwitch/vmnic)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _params_error(self.name, params, UPLINK_FIELDS, {"vswitch": str})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "paths", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        switches = {
            f"{host}/{vs['name']}": vs
            for host, facts in sorted((value.get("hosts") or {}).items())
            for vs in facts.get("vswitches") or []
            if params.get("vswitch") in (None, vs["name"])
        }
        measured = {k: {"uplinks": vs["uplinks"], "active": vs["active"],
                        "standby": vs["standby"], "links_down": vs["links_down"]}
                    for k, vs in switches.items()}
        if not switches:
            which = f"vSwitch {params['vswitch']}" if "vswitch" in params else "standard vSwitch"
            return Observed(None, f"no {which} on any host in scope", measured)
        field = params["field"]
        if field == "links_down":
            down = [f"{k}/{n}" for k, vs in switches.items() for n in vs["links_down"]]
            return Observed(down, f"uplink without link: {', '.join(down)}" if down else None,
                            measured)
        key = "uplinks" if field == "uplinks" else "active"
        low, reason = _fewest({k: len(vs[key]) for k, vs in switches.items()},
                              {k: vs[key] for k, vs in switches.items()})
        return Observed(low, f"{key} {reason}", measured)


@dataclass
class VsphereDatastorePaths:
    """SCSI paths of the LUNs behind datastores (or of every LUN) of each host."""

    name: str = "vsphere_datastore_paths"
    description: str = (
        "SCSI paths of the LUNs backing datastores (or `datastore`; every LUN with "
        "`all_luns`): `field` working_paths (the fewest, active or standby) or failed_paths "
        "(host/lun/path (state)); not-executed when no datastore is backed by a LUN"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _params_error(self.name, params, DATASTORE_PATH_FIELDS,
                             {"datastore": str, "all_luns": bool})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "paths", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        wanted = params.get("datastore")
        luns = {
            f"{host}/{lun['name']}": lun
            for host, facts in sorted((value.get("hosts") or {}).items())
            for lun in facts.get("luns") or []
            if params.get("all_luns") or (lun["datastores"] and wanted in (None, *lun["datastores"]))
        }
        measured = {k: {"datastores": lun["datastores"],
                        "paths": {p["name"]: p["state"] for p in lun["paths"]}}
                    for k, lun in luns.items()}
        if not luns:
            stores = value.get("datastores") or {}
            shown = ", ".join(f"{n}: {d['type']}" for n, d in sorted(stores.items())) or "none"
            raise StepNotExecuted(
                f"no datastore in scope is backed by a SCSI LUN, so none has paths to judge "
                f"({shown})", {"datastores": stores})
        if params["field"] == "failed_paths":
            failed = [f"{k}/{p['name']} ({p['state']})" for k, lun in luns.items()
                      for p in lun["paths"] if p["state"] not in ("active", "standby")]
            return Observed(failed, f"failed path: {', '.join(failed)}" if failed else None,
                            measured)
        low, reason = _fewest({k: int(lun["working_paths"]) for k, lun in luns.items()},
                              {k: [p["name"] for p in lun["paths"]] for k, lun in luns.items()})
        return Observed(low, f"working paths {reason}", measured)


for _check in (VsphereUplinks(), VsphereDatastorePaths()):
    register(_check)
