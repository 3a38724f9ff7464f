"""Check types for vCenter and ESXi, answered by probe ``vsphere`` on the controller.

One vSphere target is an endpoint: a vCenter (its hosts are those of the cluster named by
``vqual_vsphere_cluster``, else all) or a standalone ESXi (one host). Checks of a host setting
therefore see every host of the endpoint at once:

- ``vsphere_host``/``vsphere_time`` observe one value when every host in scope agrees, and
  ``{host: value}`` when they differ, so a differing host fails any expectation and the
  evidence names each host with its value (the cluster rule: identical hosts);
- ``vsphere_cluster_homogeneity``, ``vsphere_hcl`` and ``vsphere_vswitch_security`` observe a
  list of findings, one line per difference, naming the hosts and both values; the
  expectation is ``{op: absent}``.

The HCL data file format is documented in ``docs/hcl.md`` and parsed by
:func:`qualification.checks.hcl.load_hcl`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qualification.checks.base import Observed, ProbeRequest, StepNotExecuted, lifecycle_measured
from qualification.checks.base import one_of as _one_of
from qualification.checks.base import unknown_params as _unknown_params
from qualification.checks.hcl import HclEntry, hcl_findings
from qualification.checks.hcl import value_at as _at
from qualification.checks.registry import register
from qualification.checks.vocabulary import LIFECYCLE_STEPS
from qualification.checks.vocabulary import VSPHERE_OQ_TESTS as OQ_TESTS

ABOUT_FIELDS = (
    "name",
    "full_name",
    "vendor",
    "version",
    "build",
    "api_type",
    "api_version",
    "product_line",
    "os_type",
)
# Dotted paths into a host's facts (qualification.platforms.vsphere.adapter._host_details) that
# ``vsphere_host`` reads; ``services.<key>.{running,policy}`` is checked separately.
HOST_FIELDS = (
    "product.name",
    "product.full_name",
    "product.version",
    "product.build",
    "hardware.vendor",
    "hardware.model",
    "bios.vendor",
    "bios.version",
    "bios.date",
    "cpu.model",
    "cpu.package_models",
    "cpu.packages",
    "cpu.cores",
    "cpu.threads",
    "cpu.mhz",
    "memory_bytes",
    "lockdown_mode",
    "dns.dhcp",
    "dns.host_name",
    "dns.domain_name",
    "dns.servers",
    "dns.search_domains",
    "pnics",
    "datastores",
    "networks",
    "cluster",
    "connection_state",
    "in_maintenance",
    "overall_status",
)
SERVICE_FIELDS = ("running", "policy")
TIME_FIELDS = ("ntp_servers", "time_zone", "ntpd.running", "ntpd.policy")
#: Homogeneity attributes: name -> dotted path into a host's facts.
HOMOGENEITY = {
    "cpu_model": "cpu.model",
    "cpu_packages": "cpu.packages",
    "cpu_cores": "cpu.cores",
    "cpu_threads": "cpu.threads",
    "memory_bytes": "memory_bytes",
    "system_model": "hardware.model",
    "bios_version": "bios.version",
    "bios_date": "bios.date",
    "hypervisor_version": "product.version",
    "hypervisor_build": "product.build",
    "nics": "pnics",
    "datastores": "datastores",
    "networks": "networks",
}
CLUSTER_FIELDS = (
    "ha_enabled",
    "ha_host_monitoring",
    "ha_admission_control",
    "ha_admission_policy",
    "ha_failover_level",
    "drs_enabled",
    "drs_behavior",
    "rules",
    "hosts",
)
VSWITCH_SETTINGS = ("allowPromiscuous", "macChanges", "forgedTransmits")
VM_FIELDS = (
    "power_state",
    "host",
    "vcpus",
    "cores_per_socket",
    "memory_mib",
    "hardware_version",
    "guest_id",
    "firmware",
    "secure_boot",
    "devices",
    "snapshots",
    "template",
    "disks",
    "nics",
)


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def per_host(values: Mapping[str, Any], host: str | None = None) -> Any:
    """One host's value, the common value of all hosts, or ``{host: value}`` when they differ.

    Raises:
        KeyError: ``host`` is not among the observed hosts (an ``error`` verdict naming it).
    """
    if host is not None:
        if host not in values:
            raise KeyError(f"host {host!r} not observed (observed: {', '.join(sorted(values))})")
        return values[host]
    prints = {_show(v) for v in values.values()}
    if len(prints) == 1:
        return next(iter(values.values()))
    return {name: values[name] for name in sorted(values)}


def differences(hosts: Sequence[Mapping[str, Any]], attribute: str, path: str) -> list[str]:
    """One finding if the hosts do not all hold the same value at ``path``.

    The finding names every group of hosts with its value, the largest group first, e.g.
    ``bios_version differs: DC0_C0_H3 has "2.17.0"; DC0_C0_H0, DC0_C0_H1 have "2.19.1"``.
    """
    groups: dict[str, list[str]] = {}
    for host in hosts:
        groups.setdefault(_show(_at(host, path)), []).append(str(host.get("name")))
    if len(groups) <= 1:
        return []
    ordered = sorted(groups.items(), key=lambda item: (len(item[1]), item[0]))
    parts = [
        f"{', '.join(sorted(names))} {'has' if len(names) == 1 else 'have'} {value}"
        for value, names in ordered
    ]
    return [f"{attribute} differs: {'; '.join(parts)}"]


# -- check types ----------------------------------------------------------------------------


def _host_param(name: str, params: Mapping[str, Any]) -> str | None:
    if "host" in params and (not isinstance(params["host"], str) or not params["host"]):
        return f"{name}: parameter host must be a host name"
    return None


def _settings_error(name: str, params: Mapping[str, Any]) -> str | None:
    bad = _unknown_params(name, params, {"settings"})
    if bad:
        return bad
    settings = params.get("settings", list(VSWITCH_SETTINGS))
    if (
        not isinstance(settings, list)
        or not settings
        or any(s not in VSWITCH_SETTINGS for s in settings)
    ):
        return f"{name}: parameter settings must be a list of {', '.join(VSWITCH_SETTINGS)}"
    return None


@dataclass
class VsphereAbout:
    """``ServiceContent.about`` of the endpoint (VC-01; ESX-01 on a standalone ESXi)."""

    name: str = "vsphere_about"
    description: str = "a field of the endpoint's about info: product name, version, build, API version (VC-01, ESX-01)"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        return _unknown_params(self.name, params, {"field"}) or _one_of(
            self.name, "field", params["field"], ABOUT_FIELDS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "about", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params["field"]]


@dataclass
class VsphereHost:
    """A field of every ESXi host in scope: product and build, hardware, BIOS, CPU, memory,
    lockdown mode, DNS, state; or ``service: <key>`` with ``field: running|policy``."""

    name: str = "vsphere_host"
    description: str = (
        "a field of each ESXi host in scope (product, build, hardware, BIOS, CPU, memory, "
        "lockdown mode, services, DNS, connection state); differing hosts are listed per host "
        "(ESX-01, ESX-02, ESX-04, ESX-15, ESX-18, HW-01..HW-04)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        bad = _unknown_params(self.name, params, {"field", "host", "service"}) or _host_param(
            self.name, params
        )
        if bad:
            return bad
        if "service" in params:
            if not isinstance(params["service"], str) or not params["service"]:
                return f"{self.name}: parameter service must be a service key (TSM-SSH, ntpd, ...)"
            return _one_of(self.name, "field", params["field"], SERVICE_FIELDS)
        return _one_of(self.name, "field", params["field"], HOST_FIELDS)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "hosts", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        if "service" in params:
            # A service the host does not have reads as None: absent, never a made-up value.
            values = {
                h["name"]: _at(h, f"services.{params['service']}.{params['field']}") for h in value
            }
        else:
            values = {h["name"]: _at(h, params["field"]) for h in value}
        return per_host(values, params.get("host"))


@dataclass
class VsphereTime:
    """NTP servers, time zone and the ``ntpd`` service of each host (ESX-08)."""

    name: str = "vsphere_time"
    description: str = "NTP servers, time zone or ntpd state of each ESXi host in scope (ESX-08)"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        return (
            _unknown_params(self.name, params, {"field", "host"})
            or _host_param(self.name, params)
            or _one_of(self.name, "field", params["field"], TIME_FIELDS)
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "time", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        values = {name: _at(facts, params["field"]) for name, facts in value.items()}
        return per_host(values, params.get("host"))


@dataclass
class VsphereAdvancedOption:
    """An ESXi advanced option on each host (ESX-05, ESX-06, ESX-07, ESX-11, ESX-17)."""

    name: str = "vsphere_advanced_option"
    description: str = (
        "an advanced option of each ESXi host (UserVars.*, Security.*, Syslog.*, Net.*, "
        "Mem.*, Config.HostAgent.*); not-executed where no host has the option"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not isinstance(params.get("key"), str) or not params["key"]:
            return f"{self.name}: parameter key (an advanced option name) is required"
        return _unknown_params(self.name, params, {"key", "host"}) or _host_param(self.name, params)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "advanced", {"key": params["key"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return per_host(value, params.get("host"))


@dataclass
class VsphereCluster:
    """HA and DRS settings of the cluster in scope (VC-02, VC-03, VC-04)."""

    name: str = "vsphere_cluster"
    description: str = (
        "HA (enabled, host monitoring, admission control and policy, failover level) and DRS "
        "(enabled, automation level, rules) of each cluster in scope (VC-02, VC-04)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        if "cluster" in params and (
            not isinstance(params["cluster"], str) or not params["cluster"]
        ):
            return f"{self.name}: parameter cluster must be a cluster name"
        return _unknown_params(self.name, params, {"field", "cluster"}) or _one_of(
            self.name, "field", params["field"], CLUSTER_FIELDS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "clusters", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        field = params["field"]
        values = {
            c["name"]: c["hosts"] if field == "hosts" else c["attributes"].get(field) for c in value
        }
        if not values:
            raise ValueError("the endpoint has no cluster in scope")
        return per_host(values, params.get("cluster"))


@dataclass
class VsphereClusterHomogeneity:
    """Every host of the cluster holds the same value of each attribute (VC-06, HW-03)."""

    name: str = "vsphere_cluster_homogeneity"
    description: str = (
        "the hosts of a cluster have identical CPU model and count, memory, BIOS, hypervisor "
        "build, NICs, datastores and networks; each difference is a finding naming hosts and values"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        bad = _unknown_params(self.name, params, {"attributes"})
        if bad:
            return bad
        attributes = params.get("attributes")
        if not isinstance(attributes, list) or not attributes:
            return f"{self.name}: parameter attributes must be a non-empty list"
        unknown = [a for a in attributes if a not in HOMOGENEITY]
        if unknown:
            return f"{self.name}: unknown attribute(s) {', '.join(map(str, unknown))} (known: {', '.join(HOMOGENEITY)})"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "hosts", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        # Hosts are compared within their own cluster; an endpoint scoped to one cluster
        # (vqual_vsphere_cluster) has one group, and its findings carry no cluster prefix.
        clusters: dict[str, list[Mapping[str, Any]]] = {}
        for host in value:
            clusters.setdefault(str(host.get("cluster") or ""), []).append(host)
        findings: list[str] = []
        for cluster in sorted(clusters):
            prefix = f"cluster {cluster}: " if len(clusters) > 1 and cluster else ""
            if len(clusters) > 1 and not cluster:
                continue  # standalone hosts managed by the vCenter belong to no cluster
            for attribute in params["attributes"]:
                findings.extend(
                    prefix + f
                    for f in differences(clusters[cluster], attribute, HOMOGENEITY[attribute])
                )
        return findings


@dataclass
class VsphereHcl:
    """Each host's server model, BIOS and hypervisor version are on the HCL (HW-02, HW-10)."""

    name: str = "vsphere_hcl"
    description: str = (
        "each ESXi host's vendor, model and BIOS are on the hardware compatibility list for "
        "its hypervisor version (data file, docs/hcl.md); each miss names the host and values"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not isinstance(params.get("hcl"), str) or not params["hcl"]:
            return f"{self.name}: parameter hcl (the name of a data file of the spec) is required"
        return _unknown_params(self.name, params, {"hcl"})

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "hcl", {"hcl": params["hcl"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        entries = [
            HclEntry(
                vendor=e["vendor"],
                model=e["model"],
                firmware=tuple(e["firmware"]),
                product=e["product"],
                versions=tuple(e["versions"]),
                reference=e.get("reference", ""),
            )
            for e in value["entries"]
        ]
        return hcl_findings(value["hosts"], entries)


@dataclass
class VsphereVswitchSecurity:
    """Standard vSwitch and port group security policy of each host (ESX-13)."""

    name: str = "vsphere_vswitch_security"
    description: str = (
        "promiscuous mode, MAC address changes and forged transmits are rejected on every "
        "standard vSwitch and port group (effective policy) of each ESXi host (ESX-13)"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _settings_error(self.name, params)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "hosts", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        settings = params.get("settings", list(VSWITCH_SETTINGS))
        findings: list[str] = []
        for host in value:
            for kind, items in (("vSwitch", host["vswitches"]), ("port group", host["portgroups"])):
                for item in items:
                    # None (not set) is a finding too: the policy must say reject explicitly.
                    accepted = [s for s in settings if item["security"].get(s) is not False]
                    for setting in accepted:
                        findings.append(
                            f"{host['name']} {kind} {item['name']!r}: {setting} is {_show(item['security'].get(setting))}, want false"
                        )
        return findings


@dataclass
class VsphereDvPortgroupSecurity:
    """Distributed port group security policy (VC-08)."""

    name: str = "vsphere_dvportgroup_security"
    description: str = (
        "promiscuous mode, MAC address changes and forged transmits are rejected on every "
        "distributed port group in scope (VC-08); not-executed where the endpoint reports no policy"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        return _settings_error(self.name, params)

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "dvportgroups", {})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        settings = params.get("settings", list(VSWITCH_SETTINGS))
        findings: list[str] = []
        for group in value:
            security = group["security"] or {}
            for setting in settings:
                if security.get(setting) is not False:
                    findings.append(
                        f"distributed port group {group['name']!r}: {setting} is "
                        f"{_show(security.get(setting))}, want false"
                    )
        return findings


@dataclass
class VsphereVm:
    """A field of one VM's configuration (VM-01, VM-02, VM-03, VM-06, VM-12, VM-14)."""

    name: str = "vsphere_vm"
    description: str = "a field of one VM: power state, vCPUs, memory, hardware version, firmware, devices, snapshots"

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if not isinstance(params.get("vm"), str) or not params["vm"]:
            return f"{self.name}: parameter vm (a VM name) is required"
        if "field" not in params:
            return f"{self.name}: parameter field is required"
        return _unknown_params(self.name, params, {"vm", "field"}) or _one_of(
            self.name, "field", params["field"], VM_FIELDS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "vm", {"name": params["vm"]})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        return value[params["field"]]


@dataclass
class VsphereOq:
    """One step of the OQ lifecycle on a throwaway VM (OQ-01, OQ-08), as ``libvirt_oq``."""

    name: str = "vsphere_oq"
    description: str = (
        "an OQ lifecycle step on a throwaway VM: create, power on, power off, snapshot "
        "create/revert/delete, destroy"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "step" not in params:
            return f"{self.name}: parameter step is required"
        return _unknown_params(self.name, params, {"step"}) or _one_of(
            self.name, "step", params["step"], LIFECYCLE_STEPS
        )

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        return ProbeRequest("vsphere", "oq_lifecycle", {"steps": list(LIFECYCLE_STEPS)})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        step = value["steps"][params["step"]]
        return Observed(
            step["verdict"], step.get("reason"), lifecycle_measured(value, params["step"])
        )


#: Fields of ``vsphere_oq_protocol`` other than the findings, and the test each belongs to.
OQ_FIELDS = {"marker": "snapshot", "interruption_s": "migrate"}


@dataclass
class VsphereOqProtocol:
    """One test of the vSphere OQ protocol on the run's throwaway VMs (OQ-01..OQ-09).

    All tests of a target share one run (one request). The observed value is the test's
    list of failed post-conditions, each naming the step (``[]`` when every step held; expect
    ``{op: absent}``); a test the platform cannot perform is ``not-executed`` with the reason.
    ``field: marker`` (snapshot) and ``field: interruption_s`` (migrate) are the guest-side
    measurements: ``not-executed`` unless a guest program ran, never a made-up value. Each
    step's state before and after is an ``action`` record.
    """

    name: str = "vsphere_oq_protocol"
    description: str = (
        "an OQ test on throwaway VMs: power cycle, snapshot round trip, clone from template, "
        "live migration, maintenance round trip, backup/restore; the failed post-conditions"
    )

    def validate_params(self, params: Mapping[str, Any]) -> str | None:
        if "test" not in params:
            return f"{self.name}: parameter test is required"
        bad = _unknown_params(self.name, params, {"test", "field"}) or _one_of(
            self.name, "test", params["test"], OQ_TESTS
        )
        if bad or "field" not in params:
            return bad
        if OQ_FIELDS.get(params["field"]) != params["test"]:
            fields = ", ".join(f"{f} (test {t})" for f, t in OQ_FIELDS.items())
            return f"{self.name}: field must be one of {fields}"
        return None

    def request(self, params: Mapping[str, Any]) -> ProbeRequest:
        # Every test in the request, so all tests of a target share one run.
        return ProbeRequest("vsphere", "oq_protocol", {"tests": list(OQ_TESTS)})

    def extract(self, value: Any, params: Mapping[str, Any]) -> Any:
        test = value["tests"][params["test"]]
        field = params.get("field")
        # What the test's figure rests on: the run's other values for this test.
        measured = {k: v for k, v in test.items() if k not in ("verdict", "reason", "findings")}
        if field is None:
            if test["verdict"] == "not-executed":
                raise StepNotExecuted(
                    test.get("reason") or f"{params['test']} was not executed", measured
                )
            return Observed(test["findings"], test.get("reason"), measured)
        part = test.get("interruption" if field == "interruption_s" else field)
        if not isinstance(part, Mapping) or part.get("verdict") != "pass":
            reason = part.get("reason") if isinstance(part, Mapping) else test.get("reason")
            raise StepNotExecuted(reason or f"no {field}: {params['test']} did not run", measured)
        return Observed(part.get("seconds" if field == "interruption_s" else "value"), None, measured)


for _check in (
    VsphereAbout(),
    VsphereHost(),
    VsphereTime(),
    VsphereAdvancedOption(),
    VsphereCluster(),
    VsphereClusterHomogeneity(),
    VsphereHcl(),
    VsphereVswitchSecurity(),
    VsphereDvPortgroupSecurity(),
    VsphereVm(),
    VsphereOq(),
    VsphereOqProtocol(),
):
    register(_check)
