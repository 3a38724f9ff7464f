"""The fingerprint format and compare(): every difference kind, allowed identity, sizing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from qualification.checks.fingerprint_model import (
    FINGERPRINT_SCHEMA,
    IDENTITY_FIELDS,
    AllowedDifferences,
    Fingerprint,
    SizeRange,
    compare,
    fingerprint_record,
    fingerprints_from_records,
    make_fingerprint,
    merge,
)
from qualification.errors import BadInputError, EvidenceInvalidError


def _vm() -> dict[str, Any]:
    return {
        "vcpus": 2,
        "memory_mib": 2048,
        "firmware": "efi",
        "secure_boot": True,
        "machine": "pc-q35-7.2",
        "arch": "x86_64",
        "disks": [
            {
                "target": "vda",
                "device": "disk",
                "bus": "virtio",
                "format": "qcow2",
                "capacity": 2147483648,
                "readonly": False,
            }
        ],
        "nics": [{"model": "virtio", "network": "app-net", "kind": "network"}],
        "devices": ["channel", "rng"],
    }


def _guest() -> dict[str, Any]:
    return {
        "os_release": {"ID": "debian", "VERSION_ID": "12"},
        "kernel": {"release": "6.1.0-56-amd64"},
        "packages": {"openssh-server": "1:9.2p1-2+deb12u5", "procps": "2:4.0.2-3"},
        "services": {"sshd": "running"},
        "users": [{"name": "root", "uid": 0, "gid": 0, "home": "/root", "shell": "/bin/sh"}],
        "groups": [{"name": "root", "gid": 0, "members": []}],
        "files": {
            "/etc/hosts": {"type": "file", "mode": "0644", "owner": "root:root", "sha256": "a" * 64}
        },
        "security": {"sshd.permitrootlogin": "prohibit-password"},
    }


def _identity(n: int) -> dict[str, Any]:
    return {
        "name": f"vm{n}",
        "uuid": f"uuid-{n}",
        "macs": [f"52:54:00:00:00:0{n}"],
        "hostname": f"host{n}",
        "machine_id": f"{n}" * 32,
        "addresses": [f"10.0.0.{n}/24"],
        "ssh_host_keys": [f"ssh-ed25519 SHA256:key{n}"],
    }


def _fp(subject: str = "master", n: int = 1, **changes: Any) -> Fingerprint:
    vm, guest = _vm(), _guest()
    for path, value in changes.items():
        part, _, key = path.partition("__")
        target = vm if part == "vm" else guest
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return make_fingerprint(
        subject,
        "vm",
        vm=vm,
        guest=guest,
        identity=_identity(n),
        generalised={"machine_id_empty": n == 1},
    )


def test_round_trip_and_digest_are_stable() -> None:
    fp = _fp()
    data = fp.to_json()
    assert data["schema"] == FINGERPRINT_SCHEMA
    again = Fingerprint.from_json(json.loads(json.dumps(data)))
    assert again == fp
    assert again.digest() == fp.digest()
    assert len(fp.digest()) == 64
    # Part digests follow their content.
    other = _fp(guest__packages={"openssh-server": "1:9.2p1-2+deb12u6", "procps": "2:4.0.2-3"})
    assert other.digests["packages"] != fp.digests["packages"]
    assert other.digests["files"] == fp.digests["files"]
    assert other.digests["vm"] == fp.digests["vm"]
    assert other.digest() != fp.digest()


@pytest.mark.parametrize(
    "data, message",
    [
        ("nope", "JSON object"),
        ({"schema": "x"}, "missing"),
        ({**_fp().to_json(), "schema": "vqual.fingerprint/v0"}, "schema"),
        ({**_fp().to_json(), "kind": "toaster"}, "kind"),
        ({**_fp().to_json(), "extra": 1}, "unknown"),
        ({**_fp().to_json(), "vm": []}, "vm must be"),
    ],
)
def test_from_json_refuses_what_is_not_a_fingerprint(data: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        Fingerprint.from_json(data)


def test_identical_but_for_identity_is_no_difference() -> None:
    # A clone: every identity field differs, nothing is reported (hostname included).
    assert compare(_fp("master", 1), _fp("clone1", 2)) == []


def test_identity_field_not_allowed_is_reported() -> None:
    allowed = AllowedDifferences(identity=frozenset(IDENTITY_FIELDS) - {"hostname"})
    found = compare(_fp("master", 1), _fp("clone1", 2), allowed)
    assert [(d.what, d.where, d.baseline, d.live) for d in found] == [
        ("identity.hostname", "hostname", "host1", "host2")
    ]
    assert found[0].subject == "clone1"


@pytest.mark.parametrize(
    "change, what, where, baseline, live",
    [
        (
            {
                "guest__packages": {
                    "openssh-server": "1:9.2p1-2+deb12u5",
                    "procps": "2:4.0.2-3",
                    "curl": "7.88",
                }
            },
            "package",
            "curl",
            None,
            "7.88",
        ),
        (
            {"guest__packages": {"openssh-server": "1:9.2p1-2+deb12u6", "procps": "2:4.0.2-3"}},
            "package",
            "openssh-server",
            "1:9.2p1-2+deb12u5",
            "1:9.2p1-2+deb12u6",
        ),
        (
            {"guest__packages": {"openssh-server": "1:9.2p1-2+deb12u5"}},
            "package",
            "procps",
            "2:4.0.2-3",
            None,
        ),
        (
            {
                "guest__files": {
                    "/etc/hosts": {
                        "type": "file",
                        "mode": "0644",
                        "owner": "root:root",
                        "sha256": "b" * 64,
                    }
                }
            },
            "file",
            "/etc/hosts",
            {"type": "file", "mode": "0644", "owner": "root:root", "sha256": "a" * 64},
            {"type": "file", "mode": "0644", "owner": "root:root", "sha256": "b" * 64},
        ),
        (
            {
                "guest__users": _guest()["users"]
                + [
                    {
                        "name": "eve",
                        "uid": 1001,
                        "gid": 1001,
                        "home": "/home/eve",
                        "shell": "/bin/sh",
                    }
                ]
            },
            "user",
            "eve",
            None,
            {"name": "eve", "uid": 1001, "gid": 1001, "home": "/home/eve", "shell": "/bin/sh"},
        ),
        ({"guest__groups": []}, "group", "root", {"name": "root", "gid": 0, "members": []}, None),
        ({"guest__services": {"sshd": "stopped"}}, "service", "sshd", "running", "stopped"),
        (
            {"guest__security": {"sshd.permitrootlogin": "yes"}},
            "security",
            "sshd.permitrootlogin",
            "prohibit-password",
            "yes",
        ),
        (
            {"guest__os_release": {"ID": "debian", "VERSION_ID": "13"}},
            "os_release",
            "VERSION_ID",
            "12",
            "13",
        ),
        (
            {"guest__kernel": {"release": "6.1.0-57-amd64"}},
            "kernel",
            "release",
            "6.1.0-56-amd64",
            "6.1.0-57-amd64",
        ),
        ({"vm__vcpus": 4}, "vm.vcpus", "vcpus", 2, 4),
        ({"vm__memory_mib": 4096}, "vm.memory_mib", "memory_mib", 2048, 4096),
        ({"vm__firmware": "bios"}, "vm.firmware", "firmware", "efi", "bios"),
        ({"vm__machine": "pc-i440fx-7.2"}, "vm.machine", "machine", "pc-q35-7.2", "pc-i440fx-7.2"),
        ({"vm__secure_boot": False}, "vm.secure_boot", "secure_boot", True, False),
        ({"vm__disks": []}, "vm.disk", "vda", _vm()["disks"][0], None),
        (
            {"vm__nics": [{"model": "e1000", "network": "app-net", "kind": "network"}]},
            "vm.nic",
            "nic0",
            _vm()["nics"][0],
            {"model": "e1000", "network": "app-net", "kind": "network"},
        ),
        ({"vm__devices": ["channel", "hostdev", "rng"]}, "vm.device", "hostdev", None, "hostdev"),
    ],
)
def test_each_kind_of_difference_is_named(
    change: dict[str, Any], what: str, where: str, baseline: Any, live: Any
) -> None:
    found = compare(_fp("master", 1), _fp("clone1", 2, **change))
    assert [(d.what, d.where, d.baseline, d.live, d.subject) for d in found] == [
        (what, where, baseline, live, "clone1")
    ]
    assert what in found[0].text() and where in found[0].text()


def test_sizing_inside_its_range_is_allowed_outside_it_is_named() -> None:
    allowed = AllowedDifferences(
        sizing={"vcpus": SizeRange(1, 4), "memory_mib": SizeRange(min=1024, max=4096)}
    )
    inside = _fp("clone1", 2, vm__vcpus=4, vm__memory_mib=1024)
    assert compare(_fp(), inside, allowed) == []
    outside = _fp("clone1", 2, vm__vcpus=8, vm__memory_mib=8192)
    found = compare(_fp(), outside, allowed)
    assert [(d.what, d.baseline, d.live, d.detail) for d in found] == [
        ("vm.memory_mib", 2048, 8192, "outside the allowed range [1024, 4096]"),
        ("vm.vcpus", 2, 8, "outside the allowed range [1, 4]"),
    ]
    # Without a range, any change of size is a difference.
    assert [d.what for d in compare(_fp(), inside)] == ["vm.memory_mib", "vm.vcpus"]


def test_missing_part_and_generalised_facts() -> None:
    host_only = make_fingerprint("clone1", "host", guest=_guest(), identity=_identity(2))
    found = compare(_fp(), host_only)
    assert [(d.what, d.where) for d in found] == [("subject", "vm")]
    # Template facts count only when asked for (a booted guest is never generalised).
    live = _fp("master", 2)
    assert compare(_fp(), live) == []
    found = compare(_fp(), live, AllowedDifferences(generalised=True))
    assert [(d.what, d.where, d.baseline, d.live) for d in found] == [
        ("generalised", "machine_id_empty", True, False)
    ]


def test_order_is_deterministic() -> None:
    live = _fp(
        "clone1",
        2,
        vm__vcpus=3,
        guest__services={"sshd": "stopped"},
        guest__packages={"zz": "1", "aa": "1"},
    )
    first = compare(_fp(), live)
    assert first == compare(copy.deepcopy(_fp()), copy.deepcopy(live))
    assert [(d.what, d.where) for d in first] == sorted((d.what, d.where) for d in first)
    assert len(first) == 6  # aa, zz added; openssh-server, procps removed; sshd; vcpus


def test_allowed_from_json() -> None:
    allowed = AllowedDifferences.from_json(
        {"identity": ["hostname", "uuid"], "sizing": {"vcpus": {"min": 1, "max": 2}}}
    )
    assert allowed.identity == frozenset({"hostname", "uuid"})
    assert allowed.sizing["vcpus"] == SizeRange(1, 2)
    assert AllowedDifferences.from_json(None).identity == frozenset(IDENTITY_FIELDS)
    for bad in (
        {"sizing": {"disk": {}}},
        {"sizing": {"vcpus": {"min": 4, "max": 2}}},
        {"identity": ["serial"]},
        {"colour": 1},
        {"sizing": {"vcpus": {"min": "1"}}},
    ):
        with pytest.raises(BadInputError):
            AllowedDifferences.from_json(bad)


def test_merge_takes_the_platform_part_and_the_guest_part() -> None:
    vm_part = make_fingerprint("master", "vm", vm=_vm(), identity={"name": "master", "uuid": "u"})
    guest_part = make_fingerprint(
        "master", "host", guest=_guest(), identity={"hostname": "h", "name": "ignored"}
    )
    merged = merge([vm_part, guest_part])
    assert merged.kind == "vm" and merged.vm == vm_part.vm and merged.guest == guest_part.guest
    assert merged.identity == {"name": "master", "uuid": "u", "hostname": "h"}
    with pytest.raises(ValueError):
        merge([vm_part, make_fingerprint("other", "host")])


def test_records_are_read_back_and_a_wrong_digest_is_refused() -> None:
    fp = _fp()
    record = fingerprint_record(fp)
    assert record["digest"] == fp.digest()
    assert fingerprints_from_records([(3, record)], where="b") == {"master": fp}
    bad = {**record, "digest": "0" * 64}
    with pytest.raises(EvidenceInvalidError, match="line 3"):
        fingerprints_from_records([(3, bad)], where="b")
