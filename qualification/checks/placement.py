"""Placement checks decided on the inventory the run recorded (probe ``inventory``): the
site's decision on mixing validated and non-validated applications in a cluster (URS-RISK-02)
and a cluster's spread over fire compartments (URS-CL-02). docs/checks.md, "Placement".

The inventory variables (host or group variables; a cluster's hosts must agree on the
cluster-wide ones):

- ``vqual_mixing: {allowed: true|false, reference: "QA-DEC-12"}``: the site's decision for
  the host's cluster (``vqual_cluster``; a host without one is a cluster of its own).
- ``vqual_site``, ``vqual_fire_compartment``, ``vqual_rack``: where a host stands.
- ``vqual_compartment_policy: {min_compartments: 2, max_imbalance: 1}``: how many fire
  compartments a cluster spans at least, and by how many hosts two compartments may differ.
- ``vqual_anti_affinity: [[vm-a, vm-b], ...]``: VMs that must sit in different fire
  compartments (an HA pair); a VM is placed by ``vqual_vms`` or ``vqual_applications[].vm``
  of the host it runs on. A cluster that declares none passes with ``groups: []`` recorded.

Each aspect returns findings (none: pass) and records what it decided on in ``measured``, so
the report shows the decision and the placement whether or not it passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, one_of
from qualification.checks.registry import register

ASPECTS = ("mixing_decision", "mixing", "compartments", "anti_affinity")
ALLOWED, NOT_ALLOWED, NOT_RECORDED = "allowed", "not allowed", "not recorded"
DEFAULT_POLICY = {"min_compartments": 2, "max_imbalance": 1}


class PlacementError(ValueError):
    """An inventory variable the placement checks read is malformed (the test is ``error``)."""


@dataclass(frozen=True)
class Cluster:
    """The hosts of one cluster as the snapshot records them (name -> its variables)."""

    name: str
    hosts: dict[str, Mapping[str, Any]]

    def agreed(self, variable: str) -> Any:
        """A cluster-wide variable: the one value its hosts set (None: none sets it).

        Raises:
            PlacementError: hosts set different values.
        """
        values = {h: v[variable] for h, v in self.hosts.items() if variable in v}
        distinct = {repr(v) for v in values.values()}
        if len(distinct) > 1:
            shown = ", ".join(f"{h}: {values[h]!r}" for h in sorted(values))
            raise PlacementError(f"the hosts of cluster {self.name} disagree on {variable} ({shown})")
        return next(iter(values.values()), None)


def cluster_of(snapshot: Mapping[str, Any], target: str) -> Cluster:
    """The cluster ``target`` belongs to (``vqual_cluster``), or the target alone.

    Raises:
        PlacementError: the target is not in the snapshot.
    """
    hosts = snapshot.get("hosts") or {}
    if target not in hosts:
        raise PlacementError(f"{target} is not in the recorded inventory")
    name = hosts[target].get("vqual_cluster")
    if not name:
        return Cluster(f"{target} (no vqual_cluster)", {target: hosts[target]})
    return Cluster(str(name), {h: v for h, v in sorted(hosts.items()) if v.get("vqual_cluster") == name})


def _decision(cluster: Cluster) -> tuple[str, str | None]:
    value = cluster.agreed("vqual_mixing")
    if value is None:
        return NOT_RECORDED, None
    if not isinstance(value, Mapping) or not isinstance(value.get("allowed"), bool):
        raise PlacementError(
            f"vqual_mixing of cluster {cluster.name} must be {{allowed: true|false, reference}}, "
            f"not {value!r}"
        )
    reference = value.get("reference")
    return (ALLOWED if value["allowed"] else NOT_ALLOWED), (str(reference) if reference else None)


def _applications(cluster: Cluster) -> tuple[list[str], list[str]]:
    """(validated, unvalidated) applications of the cluster as ``name (host[/vm])``."""
    validated: list[str] = []
    unvalidated: list[str] = []
    for host, variables in cluster.hosts.items():
        for app in variables.get("vqual_applications") or ():
            if not isinstance(app, Mapping):
                continue
            where = f"{host}/{app['vm']}" if app.get("vm") else host
            shown = f"{app.get('name')} ({where})"
            (validated if app.get("validated", True) is not False else unvalidated).append(shown)
    return validated, unvalidated


def mixing_decision(cluster: Cluster) -> Observed:
    """The decision recorded for the cluster: ``allowed``, ``not allowed`` or ``not recorded``."""
    decision, reference = _decision(cluster)
    return Observed(decision, measured={"cluster": cluster.name, "reference": reference})


def mixing(cluster: Cluster) -> Observed:
    """Findings where the cluster carries validated and unvalidated applications together
    without a decision that allows it."""
    decision, reference = _decision(cluster)
    validated, unvalidated = _applications(cluster)
    findings = []
    if validated and unvalidated and decision != ALLOWED:
        why = (
            "no decision is recorded (vqual_mixing)"
            if decision == NOT_RECORDED
            else f"the site does not allow mixing ({reference or 'no reference'})"
        )
        findings.append(
            f"cluster {cluster.name} carries validated {', '.join(validated)} and unvalidated "
            f"{', '.join(unvalidated)}, but {why}"
        )
    measured = {
        "cluster": cluster.name, "decision": decision, "reference": reference,
        "validated": validated, "unvalidated": unvalidated,
    }
    return Observed(findings, reason="; ".join(findings) or None, measured=measured)


def fire_compartment(variables: Mapping[str, Any]) -> str | None:
    """A host's fire compartment from its variables (``site/compartment`` when a site is
    given), or None; the rolling-patch planner reads it the same way."""
    return _compartment("", variables)


def _compartment(host: str, variables: Mapping[str, Any]) -> str | None:
    compartment = variables.get("vqual_fire_compartment")
    if compartment in (None, ""):
        return None
    site = variables.get("vqual_site")
    return f"{site}/{compartment}" if site else str(compartment)


def _policy(cluster: Cluster) -> dict[str, int]:
    given = cluster.agreed("vqual_compartment_policy") or {}
    if not isinstance(given, Mapping) or set(given) - set(DEFAULT_POLICY):
        raise PlacementError(
            f"vqual_compartment_policy of cluster {cluster.name} must be a mapping of "
            f"{', '.join(DEFAULT_POLICY)}, not {given!r}"
        )
    policy = {**DEFAULT_POLICY, **given}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in policy.values()):
        raise PlacementError(f"vqual_compartment_policy values must be whole numbers: {given!r}")
    return policy


def placement(cluster: Cluster) -> tuple[dict[str, list[str]], list[str]]:
    """(fire compartment -> its hosts, hosts without a compartment)."""
    spread: dict[str, list[str]] = {}
    unplaced: list[str] = []
    for host, variables in cluster.hosts.items():
        where = _compartment(host, variables)
        if where is None:
            unplaced.append(host)
        else:
            spread.setdefault(where, []).append(host)
    return dict(sorted(spread.items())), unplaced


def compartments(cluster: Cluster) -> Observed:
    """Findings where the cluster spans fewer fire compartments than its policy asks, or its
    hosts are not evenly distributed over them."""
    policy = _policy(cluster)
    spread, unplaced = placement(cluster)
    findings = [f"{host} has no vqual_fire_compartment" for host in unplaced]
    shown = "; ".join(f"{c}: {', '.join(hosts)}" for c, hosts in spread.items()) or "none"
    if len(spread) < policy["min_compartments"]:
        findings.append(
            f"cluster {cluster.name} spans {len(spread)} fire compartment(s) ({shown}); its "
            f"policy needs at least {policy['min_compartments']}"
        )
    counts = [len(hosts) for hosts in spread.values()]
    if counts and max(counts) - min(counts) > policy["max_imbalance"]:
        findings.append(
            f"the hosts of cluster {cluster.name} are not evenly distributed ({shown}); its "
            f"policy allows a difference of {policy['max_imbalance']}"
        )
    measured: dict[str, Any] = {"cluster": cluster.name, "compartments": spread, "policy": policy}
    for host, variables in cluster.hosts.items():
        if variables.get("vqual_rack"):
            measured.setdefault("racks", {})[host] = variables["vqual_rack"]
    return Observed(findings, reason="; ".join(findings) or None, measured=measured)


def _vm_hosts(cluster: Cluster) -> dict[str, str]:
    """VM name -> the host of the cluster it runs on."""
    found: dict[str, str] = {}
    for host, variables in cluster.hosts.items():
        for vm in variables.get("vqual_vms") or ():
            found[str(vm)] = host
        for app in variables.get("vqual_applications") or ():
            if isinstance(app, Mapping) and app.get("vm"):
                found.setdefault(str(app["vm"]), host)
    return found


def ha_groups(cluster: Cluster) -> list[list[str]]:
    """The cluster's ``vqual_anti_affinity`` groups (HA pairs).

    Raises:
        PlacementError: the variable is malformed, or the hosts disagree on it.
    """
    return _groups(cluster)


def _groups(cluster: Cluster) -> list[list[str]]:
    value = cluster.agreed("vqual_anti_affinity")
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(g, list) and len(g) >= 2 and all(isinstance(v, str) for v in g) for g in value
    ):
        raise PlacementError(
            f"vqual_anti_affinity of cluster {cluster.name} must be a list of VM name lists "
            f"(two or more each), not {value!r}"
        )
    return [list(g) for g in value]


def anti_affinity(cluster: Cluster) -> Observed:
    """Findings where VMs of one anti-affinity group share a fire compartment, or run on no
    host of the cluster. A cluster that declares no group has none to split (``measured``
    says so: ``groups: []``)."""
    groups = _groups(cluster)
    hosts = _vm_hosts(cluster)
    findings: list[str] = []
    placed: dict[str, str] = {}
    for group in groups:
        by_compartment: dict[str, list[str]] = {}
        for vm in group:
            host = hosts.get(vm)
            if host is None:
                findings.append(f"{vm} runs on no host of cluster {cluster.name}")
                continue
            where = _compartment(host, cluster.hosts[host]) or f"(none: {host})"
            placed[vm] = f"{host} in {where}"
            by_compartment.setdefault(where, []).append(f"{vm} ({host})")
        for where, vms in by_compartment.items():
            if len(vms) > 1:
                findings.append(
                    f"anti-affinity group {', '.join(group)}: {' and '.join(vms)} share fire "
                    f"compartment {where}"
                )
    measured = {"cluster": cluster.name, "groups": groups, "placed": placed}
    return Observed(findings, reason="; ".join(findings) or None, measured=measured)


_ASPECT = {
    "mixing_decision": mixing_decision,
    "mixing": mixing,
    "compartments": compartments,
    "anti_affinity": anti_affinity,
}


def answer_placement(
    requests: Sequence[Mapping[str, Any]], snapshot: Mapping[str, Any], target: str
) -> dict[str, dict[str, Any]]:
    """Observations of the ``inventory`` probe's requests for ``target``: the cluster's
    recorded variables, read from the run's inventory snapshot (the check decides)."""
    out: dict[str, dict[str, Any]] = {}
    for request in requests:
        aspect = str((request.get("args") or {}).get("aspect"))
        key = str(request["key"])
        try:
            cluster = cluster_of(snapshot, target)
        except PlacementError as exc:
            out[key] = {"error": str(exc), "method": f"inventory.placement {aspect}"}
            continue
        out[key] = {
            "value": {"cluster": cluster.name, "hosts": {h: dict(v) for h, v in cluster.hosts.items()}},
            "method": f"inventory.placement {aspect}",
        }
    return out


class PlacementCheck:
    """``cluster_placement``: one aspect of a cluster's placement, from the inventory."""

    name = "cluster_placement"
    description = (
        "Placement from the inventory: the site's decision on mixing validated and "
        "non-validated applications per cluster and whether the cluster follows it "
        "(URS-RISK-02); fire-compartment spread and anti-affinity pairs (URS-CL-02)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        unknown = sorted(set(params) - {"aspect"})
        if unknown:
            return f"{self.name}: unknown parameter(s) {', '.join(unknown)} (allowed: aspect)"
        if "aspect" not in params:
            return f"{self.name}: parameter aspect is required"
        return one_of(self.name, "aspect", params["aspect"], ASPECTS)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("inventory", "placement", {"aspect": params["aspect"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        # a malformed site value raises PlacementError: the test is error, naming it
        return _ASPECT[params["aspect"]](Cluster(str(value["cluster"]), dict(value["hosts"])))


register(PlacementCheck())
