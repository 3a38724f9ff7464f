"""vSphere check types, the HCL and the OQ protocol's check type (no endpoint needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualification import checks
from qualification.checks.base import Observation
from qualification.checks.hcl import HclEntry, hcl_findings, load_hcl
from qualification.checks.vsphere import differences, per_host
from qualification.errors import BadInputError
from qualification.checks.vocabulary import VSPHERE_OQ_TESTS as OQ_TESTS

REPO = Path(__file__).resolve().parents[3]
HCL_EXAMPLE = REPO / "ansible_collections" / "vqual" / "qualification" / "specs" / "data" / "hcl-example.yaml"


def _host(name: str, **over: Any) -> dict[str, Any]:
    host: dict[str, Any] = {
        "name": name,
        "cluster": "C0",
        "hardware": {"vendor": "Dell Inc.", "model": "PowerEdge R650", "uuid": name},
        "bios": {"vendor": "Dell Inc.", "version": "2.19.1", "date": "2023-05-10"},
        "cpu": {"model": "Xeon", "package_models": ["Xeon"], "vendor": "intel", "packages": 2,
                "cores": 16, "threads": 32, "mhz": 2400},
        "memory_bytes": 512 * 2**30,
        "product": {"name": "VMware ESXi", "full_name": "VMware ESXi 8.0.2", "version": "8.0.2",
                    "build": "22380479"},
        "lockdown_mode": "lockdownNormal",
        "services": {"TSM-SSH": {"running": False, "policy": "off"}},
        "time": {"ntp_servers": ["ntp1", "ntp2"], "time_zone": "UTC"},
        "dns": {"servers": ["10.0.0.53"], "domain_name": "example.org"},
        "vswitches": [{"name": "vSwitch0", "uplinks": ["vmnic0"], "security": {
            "allowPromiscuous": False, "macChanges": False, "forgedTransmits": False}}],
        "portgroups": [],
        "pnics": [{"device": "vmnic0", "driver": "ixgben", "speed_mb": 25000, "duplex": True}],
        "datastores": ["ds1"],
        "networks": ["VM Network"],
        "connection_state": "connected",
        "in_maintenance": False,
        "overall_status": "green",
    }
    for path, value in over.items():
        node = host
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return host


def _decide(check: str, value: Any, params: dict[str, Any], expect: dict[str, Any]) -> Any:
    found = checks.get_check(check)
    assert found.validate_params(params) is None
    return checks.evaluate(found, Observation(value=value), params, expect)


# -- per_host and differences -------------------------------------------------------------


def test_per_host_gives_the_common_value_or_each_hosts_value() -> None:
    assert per_host({"a": "x", "b": "x"}) == "x"
    assert per_host({"b": "y", "a": "x"}) == {"a": "x", "b": "y"}
    assert per_host({"a": "x", "b": "y"}, "b") == "y"
    with pytest.raises(KeyError, match="host 'c' not observed"):
        per_host({"a": 1}, "c")


def test_a_differing_host_fails_an_expectation_all_others_meet() -> None:
    hosts = [_host("h1"), _host("h2"), _host("h3", lockdown_mode="lockdownDisabled")]
    outcome = _decide("vsphere_host", hosts, {"field": "lockdown_mode"},
                      {"op": "in", "value": ["lockdownNormal", "lockdownStrict"]})
    assert outcome.verdict == "fail"
    assert outcome.observed == {"h1": "lockdownNormal", "h2": "lockdownNormal",
                                "h3": "lockdownDisabled"}


def test_host_service_field_and_a_missing_service() -> None:
    hosts = [_host("h1"), _host("h2")]
    ssh = _decide("vsphere_host", hosts, {"service": "TSM-SSH", "field": "policy"},
                  {"op": "equals", "value": "off"})
    assert (ssh.verdict, ssh.observed) == ("pass", "off")
    # A service the host does not have is None, never a made-up value.
    missing = _decide("vsphere_host", hosts, {"service": "snmpd", "field": "running"},
                      {"op": "equals", "value": False})
    assert (missing.verdict, missing.observed) == ("fail", None)


def test_differences_name_every_group_of_hosts_with_its_value() -> None:
    hosts = [_host("h1"), _host("h2"), _host("h3", bios__version="2.17.0")]
    assert differences(hosts, "bios_version", "bios.version") == [
        'bios_version differs: h3 has "2.17.0"; h1, h2 have "2.19.1"'
    ]
    assert differences(hosts[:2], "bios_version", "bios.version") == []


def test_homogeneity_check_lists_each_attribute_that_differs() -> None:
    hosts = [_host("h1"), _host("h2", memory_bytes=256 * 2**30, product__build="1"), _host("h3")]
    params = {"attributes": ["memory_bytes", "hypervisor_build", "cpu_model"]}
    outcome = _decide("vsphere_cluster_homogeneity", hosts, params, {"op": "absent"})
    assert outcome.verdict == "fail"
    assert outcome.observed == [
        f"memory_bytes differs: h2 has {256 * 2**30}; h1, h3 have {512 * 2**30}",
        'hypervisor_build differs: h2 has "1"; h1, h3 have "22380479"',
    ]
    same = _decide("vsphere_cluster_homogeneity", [_host("h1"), _host("h2")], params,
                   {"op": "absent"})
    assert (same.verdict, same.observed) == ("pass", [])


@given(st.lists(st.sampled_from(["2.17.0", "2.19.1", "2.20.0"]), min_size=1, max_size=8))
def test_homogeneity_passes_exactly_when_all_hosts_agree(versions: list[str]) -> None:
    hosts = [_host(f"h{i}", bios__version=v) for i, v in enumerate(versions)]
    found = differences(hosts, "bios_version", "bios.version")
    assert (found == []) == (len(set(versions)) == 1)
    if found:  # every host is named once, with its own value
        for i, v in enumerate(versions):
            assert f"h{i}" in found[0]
        for v in set(versions):
            assert f'"{v}"' in found[0]


def test_vswitch_security_lists_each_accepting_switch_and_port_group() -> None:
    host = _host("h1")
    host["vswitches"][0]["security"]["macChanges"] = True
    host["portgroups"] = [{"name": "VM Network", "vswitch": "vSwitch0", "vlan": 0, "security": {
        "allowPromiscuous": None, "macChanges": False, "forgedTransmits": True}}]
    outcome = _decide("vsphere_vswitch_security", [host, _host("h2")], {}, {"op": "absent"})
    assert outcome.verdict == "fail"
    assert outcome.observed == [
        "h1 vSwitch 'vSwitch0': macChanges is true, want false",
        "h1 port group 'VM Network': allowPromiscuous is null, want false",
        "h1 port group 'VM Network': forgedTransmits is true, want false",
    ]
    only = _decide("vsphere_vswitch_security", [host], {"settings": ["allowPromiscuous"]},
                   {"op": "absent"})
    assert only.observed == ["h1 port group 'VM Network': allowPromiscuous is null, want false"]


def test_time_check_reads_ntp_per_host() -> None:
    value = {"h1": {"ntp_servers": ["a", "b"], "time_zone": "UTC", "ntpd": {"running": True}},
             "h2": {"ntp_servers": ["a"], "time_zone": "UTC", "ntpd": {"running": True}}}
    outcome = _decide("vsphere_time", value, {"field": "ntp_servers"},
                      {"op": "equals", "value": ["a", "b"]})
    assert (outcome.verdict, outcome.observed) == ("fail", {"h1": ["a", "b"], "h2": ["a"]})
    running = _decide("vsphere_time", value, {"field": "ntpd.running"},
                      {"op": "equals", "value": True})
    assert running.verdict == "pass"


def test_not_reported_is_not_executed_never_pass() -> None:
    found = checks.get_check("vsphere_time")
    outcome = checks.evaluate(found, Observation(not_executed="no dateTimeInfo"),
                              {"field": "ntp_servers"}, {"op": "equals", "value": ["a"]})
    assert (outcome.verdict, outcome.reason) == ("not-executed", "no dateTimeInfo")


@pytest.mark.parametrize(("check", "params", "message"), [
    ("vsphere_host", {}, "parameter field is required"),
    ("vsphere_host", {"field": "password"}, "parameter field must be one of"),
    ("vsphere_host", {"field": "policy", "service": ""}, "service must be a service key"),
    ("vsphere_about", {"field": "nope"}, "parameter field must be one of"),
    ("vsphere_cluster_homogeneity", {"attributes": ["colour"]}, "unknown attribute(s) colour"),
    ("vsphere_hcl", {}, "parameter hcl"),
    ("vsphere_vswitch_security", {"settings": ["x"]}, "parameter settings"),
    ("vsphere_vm", {"field": "vcpus"}, "parameter vm"),
    ("vsphere_oq", {"step": "fly"}, "parameter step must be one of"),
    ("vsphere_time", {"field": "ntp_servers", "extra": 1}, "unknown parameter(s) extra"),
])
def test_bad_parameters_name_the_check_type(check: str, params: dict[str, Any], message: str
                                            ) -> None:
    text = checks.validate_params(check, params)
    assert text is not None and text.startswith(check) and message in text


# -- HCL ------------------------------------------------------------------------------------


def test_the_shipped_example_hcl_loads() -> None:
    entries = load_hcl(HCL_EXAMPLE.read_text(), str(HCL_EXAMPLE))
    assert entries[0] == HclEntry("Dell Inc.", "PowerEdge R650", ("2.19.1", "2.17.0"),
                                  "VMware ESXi", ("6.5.0", "7.0.3", "8.0.*"),
                                  "VCG system listing, PowerEdge R650 (example)")


def test_hcl_findings_name_host_and_values() -> None:
    entries = load_hcl(HCL_EXAMPLE.read_text(), "hcl")
    hosts = [
        _host("ok"),
        _host("model", hardware__model="PowerEdge R660"),
        _host("bios", bios__version="1.0.0"),
        _host("version", product__version="9.0.0"),
    ]
    assert hcl_findings(hosts, entries) == [
        "bios: Dell Inc. PowerEdge R650 BIOS '1.0.0' is not on the HCL (listed: 2.17.0, 2.19.1)",
        (
            "model: server 'Dell Inc.' 'PowerEdge R660' is not on the HCL (listed: Dell Inc. "
            "PowerEdge R650; HPE ProLiant DL360 Gen10 Plus)"
        ),
        (
            "version: Dell Inc. PowerEdge R650 is not certified for VMware ESXi 9.0.0 (HCL lists "
            "VMware ESXi 6.5.0, 7.0.3, 8.0.*)"
        ),
    ]


def test_hcl_check_reads_entries_from_the_observation() -> None:
    entries = [e.to_json() for e in load_hcl(HCL_EXAMPLE.read_text(), "hcl")]
    value = {"hosts": [_host("h1"), _host("h2", bios__version="0.9")], "entries": entries}
    outcome = _decide("vsphere_hcl", value, {"hcl": "hcl"}, {"op": "absent"})
    assert outcome.verdict == "fail" and outcome.observed[0].startswith("h2: ")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(kind="Other"), "not an HCL"),
    (lambda d: d.update(apiVersion="v0"), "apiVersion must be vqual/v1"),
    (lambda d: d.update(entries=[]), "entries must be a non-empty list"),
    (lambda d: d["entries"][0].pop("model"), "entries[0].model must be a non-empty string"),
    (lambda d: d["entries"][1].update(firmware=[]), "entries[1].firmware must be a non-empty"),
    (lambda d: d["entries"][0].update(colour="red"), "entries[0]: unknown field(s) colour"),
    (lambda d: d["entries"][0]["hypervisor"].pop("versions"), "hypervisor.versions"),
])
def test_bad_hcl_names_file_and_entry(mutate: Any, message: str) -> None:
    import yaml

    doc = yaml.safe_load(HCL_EXAMPLE.read_text())
    mutate(doc)
    with pytest.raises(BadInputError) as info:
        load_hcl(yaml.safe_dump(doc), "specs/data/x.yaml")
    assert message in info.value.one_line()
    assert info.value.one_line().startswith("specs/data/x.yaml: ")


def test_advanced_option_per_host_and_missing_on_one_host() -> None:
    agree = _decide("vsphere_advanced_option", {"h1": 600, "h2": 600},
                    {"key": "UserVars.ESXiShellInteractiveTimeOut"}, {"op": "range", "max": 900})
    assert (agree.verdict, agree.observed) == ("pass", 600)
    # A host without the option reads as None and is named.
    one_missing = _decide("vsphere_advanced_option", {"h1": 1, "h2": None},
                          {"key": "Net.BlockGuestBPDU"}, {"op": "equals", "value": 1})
    assert (one_missing.verdict, one_missing.observed) == ("fail", {"h1": 1, "h2": None})
    assert checks.validate_params("vsphere_advanced_option", {}) == (
        "vsphere_advanced_option: parameter key (an advanced option name) is required")


def test_homogeneity_compares_hosts_within_their_cluster() -> None:
    hosts = [
        _host("a1", cluster="A"), _host("a2", cluster="A", bios__version="2.17.0"),
        _host("b1", cluster="B", bios__version="3.0"), _host("b2", cluster="B", bios__version="3.0"),
        _host("solo", cluster=None, bios__version="9.9"),
    ]
    outcome = _decide("vsphere_cluster_homogeneity", hosts, {"attributes": ["bios_version"]},
                      {"op": "absent"})
    # equal groups: ordered by value
    assert outcome.observed == ['cluster A: bios_version differs: a2 has "2.17.0"; a1 has "2.19.1"']


def test_cluster_settings() -> None:
    clusters = [{"name": "C1", "hosts": ["h1", "h2"],
                 "attributes": {"ha_enabled": False, "drs_enabled": True}}]
    ha = _decide("vsphere_cluster", clusters, {"field": "ha_enabled"},
                 {"op": "equals", "value": True})
    assert (ha.verdict, ha.observed) == ("fail", False)
    hosts = _decide("vsphere_cluster", clusters, {"field": "hosts"},
                    {"op": "contains", "value": "h2"})
    assert hosts.verdict == "pass"
    none = checks.evaluate(checks.get_check("vsphere_cluster"), Observation(value=[]),
                           {"field": "drs_enabled"}, {"op": "equals", "value": True})
    assert none.verdict == "error" and "no cluster in scope" in (none.reason or "")


def test_distributed_port_group_security_findings() -> None:
    groups = [
        {"name": "pg-app", "security": {"allowPromiscuous": False, "macChanges": False,
                                        "forgedTransmits": False}},
        {"name": "pg-old", "security": {"allowPromiscuous": False, "macChanges": True,
                                        "forgedTransmits": None}},
        {"name": "pg-none", "security": None},
    ]
    outcome = _decide("vsphere_dvportgroup_security", groups, {"settings": ["macChanges"]},
                      {"op": "absent"})
    assert outcome.observed == [
        "distributed port group 'pg-old': macChanges is true, want false",
        "distributed port group 'pg-none': macChanges is null, want false",
    ]
    clean = _decide("vsphere_dvportgroup_security", groups[:1], {}, {"op": "absent"})
    assert (clean.verdict, clean.observed) == ("pass", [])


# -- the OQ protocol's check type (vsphere_oq_protocol) ------------------------------------

RUN = "20260101T000000Z-abc123"


def _protocol_value(**tests: dict[str, Any]) -> dict[str, Any]:
    return {"vm": f"vqual-tmp-{RUN}-oq", "standalone": False, "tests": tests,
            "cleanup": {"verdict": "pass", "reason": None}}


def _decide_oq(params: dict[str, Any], expect: dict[str, Any], value: dict[str, Any]) -> Any:
    check = checks.get_check("vsphere_oq_protocol")
    assert check.validate_params(params) is None
    return checks.evaluate(check, Observation(value=value), params, expect)


def test_oq_protocol_check_passes_on_no_finding_and_fails_naming_the_step() -> None:
    value = _protocol_value(
        power_cycle={"verdict": "pass", "reason": None, "findings": []},
        snapshot={"verdict": "fail", "reason": "x", "findings": ["vm.snapshot_revert: off"],
                  "marker": {"verdict": "not-executed", "reason": "no guest OS"}},
    )
    absent = {"op": "absent"}
    assert _decide_oq({"test": "power_cycle"}, absent, value).verdict == "pass"
    failed = _decide_oq({"test": "snapshot"}, absent, value)
    assert (failed.verdict, failed.observed) == ("fail", ["vm.snapshot_revert: off"])
    marker = _decide_oq({"test": "snapshot", "field": "marker"}, {"op": "equals", "value": "pass"},
                     value)
    assert (marker.verdict, marker.observed, marker.reason) == ("not-executed", None, "no guest OS")


def test_oq_protocol_check_never_makes_up_a_measurement() -> None:
    value = _protocol_value(
        migrate={"verdict": "pass", "reason": None, "findings": [],
                 "interruption": {"verdict": "not-executed", "reason": "no heartbeat"}},
        maintenance={"verdict": "not-executed", "reason": "a standalone ESXi has one host",
                     "findings": []},
    )
    gap = _decide_oq({"test": "migrate", "field": "interruption_s"}, {"op": "range", "max": 2.0},
                  value)
    assert (gap.verdict, gap.observed, gap.reason) == ("not-executed", None, "no heartbeat")
    skipped = _decide_oq({"test": "maintenance"}, {"op": "absent"}, value)
    assert (skipped.verdict, skipped.reason) == ("not-executed", "a standalone ESXi has one host")
    # A measured gap is compared as any number is.
    value["tests"]["migrate"]["interruption"] = {"verdict": "pass", "seconds": 2.5}
    late = _decide_oq({"test": "migrate", "field": "interruption_s"}, {"op": "range", "max": 2.0},
                   value)
    assert (late.verdict, late.observed) == ("fail", 2.5)


def test_oq_protocol_check_refuses_bad_params() -> None:
    check = checks.get_check("vsphere_oq_protocol")
    assert "parameter test is required" in (check.validate_params({}) or "")
    assert "test must be one of" in (check.validate_params({"test": "reboot"}) or "")
    assert "field must be one of" in (
        check.validate_params({"test": "clone", "field": "marker"}) or "")
    assert "unknown parameter" in (check.validate_params({"test": "clone", "vm": "x"}) or "")
    # Every test of a target shares one request, so one run serves them all.
    keys = {check.request({"test": t}).key() for t in OQ_TESTS}
    assert len(keys) == 1
