"""Conversion by difference: the spec's rules, the judgement of each difference, application
data (qualification.baseline.conversion, qualification.checks.app_data)."""

from __future__ import annotations

from typing import Any

import pytest

from qualification.baseline.conversion import ConversionRules, judge
from qualification.checks.app_data import data_paths, is_data, split_data, with_app_data
from qualification.checks.fingerprint_model import make_fingerprint
from qualification.errors import BadInputError

RULES = {
    "identity": ["name", "uuid", "macs"],
    "allowed": [
        {"what": "vm.disk", "fields": ["format", "bus", "dev"], "reason": "target platform"},
        {"what": "vm.nic", "fields": ["model"]},
        {"what": "package", "where": "open-vm-tools*", "reason": "old platform's tools"},
    ],
}


def fp(name: str, *, disk: dict[str, Any], nic: str, packages: dict[str, str],
       data: dict[str, Any], hostname: str = "app01") -> Any:
    return make_fingerprint(
        name, "vm",
        vm={"vcpus": 2, "memory_mib": 2048, "machine": "pc", "disks": [disk],
            "nics": [{"model": nic, "network": "default", "kind": "network"}], "devices": []},
        guest={"packages": packages, "files": {}, "data": data},
        identity={"name": name, "uuid": name + "-uuid", "hostname": hostname},
    )


SRC_DISK = {"target": "vda", "device": "disk", "bus": "virtio", "format": "qcow2",
            "capacity": 10, "readonly": False}
DST_DISK = {"target": "sda", "device": "disk", "bus": "sata", "format": "raw",
            "capacity": 10, "readonly": False}
DATA = {"/srv/app/a": {"type": "file", "sha256": "1" * 64},
        "/srv/app/b": {"type": "file", "sha256": "2" * 64}}


def test_the_new_platforms_hardware_and_tools_are_allowed_and_named_with_their_rule() -> None:
    rules = ConversionRules.from_json(RULES)
    source = fp("src", disk=SRC_DISK, nic="virtio", packages={"bash": "5", "open-vm-tools": "12"},
                data=DATA)
    target = fp("dst", disk=DST_DISK, nic="e1000", packages={"bash": "5"}, data=DATA)
    judged = judge(source, target, rules)
    assert [(j.difference.what, j.difference.where, j.allowed) for j in judged] == [
        ("package", "open-vm-tools", True),
        ("vm.disk", "vda", True),  # paired with sda by position: a bus change renames it
        ("vm.nic", "nic0", True),
    ]
    disk = judged[1].difference
    assert (disk.baseline["dev"], disk.live["dev"], disk.live["bus"]) == ("vda", "sda", "sata")
    assert judged[0].rule is not None and "old platform's tools" in judged[0].rule.text()


def test_every_other_difference_fails_and_data_always_fails_naming_the_file() -> None:
    rules = ConversionRules.from_json(RULES)
    source = fp("src", disk=SRC_DISK, nic="virtio", packages={"bash": "5"}, data=DATA)
    changed = {"/srv/app/a": {"type": "file", "sha256": "9" * 64},
               "/srv/app/c": {"type": "file", "sha256": "3" * 64}}
    target = fp("dst", disk={**DST_DISK, "capacity": 20}, nic="virtio",
                packages={"bash": "5.1"}, data=changed, hostname="other")
    found = {(j.difference.what, j.difference.where): j for j in judge(source, target, rules)}
    assert sorted(found) == [
        ("data", "/srv/app/a"), ("data", "/srv/app/b"), ("data", "/srv/app/c"),
        ("identity.hostname", "hostname"), ("package", "bash"), ("vm.disk", "vda"),
    ]
    assert not any(j.allowed for j in found.values())  # capacity is not among the fields
    details = {w: found[("data", w)].difference.detail for w in ("/srv/app/a", "/srv/app/b", "/srv/app/c")}
    assert details == {"/srv/app/a": "changed", "/srv/app/b": "removed", "/srv/app/c": "added"}
    assert "baseline" in found[("data", "/srv/app/b")].difference.text()


@pytest.mark.parametrize("bad, message", [
    ({"allowed": [{"what": "data"}]}, "application data must arrive unchanged"),
    ({"allowed": [{"what": "*"}]}, "would allow data"),
    ({"allowed": [{"what": "vm.disk", "colour": "red"}]}, "unknown keys"),
    ({"identity": ["serial"]}, "identity must list"),
    ({"sizing": {"vcpus": {"min": 4, "max": 2}}}, "min 4 > max 2"),
    ({"allowed": {"what": "vm.disk"}}, "allowed must be a list"),
    ({"extra": 1}, "unknown keys"),
])
def test_a_malformed_conversion_section_is_refused_in_one_line(bad: Any, message: str) -> None:
    with pytest.raises(BadInputError) as info:
        ConversionRules.from_json(bad, where="spec.yaml conversion")
    assert message in info.value.one_line() and "\n" not in info.value.one_line()


def test_application_data_is_requested_with_the_key_files_and_stands_apart() -> None:
    assert data_paths(["/srv/app/", "/srv/db"]) == ("/srv/app", "/srv/db")
    with pytest.raises(BadInputError):
        data_paths(["relative/path"])
    assert is_data("/srv/app/x/y", ["/srv/app"]) and not is_data("/srv/apple", ["/srv/app"])
    requests = [{"key": "k1", "method": "fingerprint", "args": {"files": ["/etc/issue"]}},
                {"key": "k2", "method": "fingerprint", "args": {}},
                {"key": "k3", "method": "sysctl", "args": {"name": "x"}}]
    out = with_app_data(requests, ["/srv/app"])
    assert out[0]["args"]["files"] == ["/etc/issue", "/srv/app", "/srv/app/**"]
    assert out[1]["args"] == {"files": ["/srv/app", "/srv/app/**"], "default_files": True}
    assert out[2] == requests[2] and [r["key"] for r in out] == ["k1", "k2", "k3"]
    value = {"guest": {"files": {"/etc/issue": {"sha256": "a"}, "/srv/app/x": {"sha256": "b"}}}}
    split = split_data(value, ["/srv/app"])
    assert split["guest"]["files"] == {"/etc/issue": {"sha256": "a"}}
    assert split["guest"]["data"] == {"/srv/app/x": {"sha256": "b"}}
