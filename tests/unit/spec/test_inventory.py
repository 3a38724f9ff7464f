"""InventoryModel: validation of vqual variables, the redacted snapshot and its digest."""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

import pytest
import rfc8785

from qualification.errors import BadInputError
from qualification.evidence.canonical import canonical_bytes
from qualification.spec import InventoryModel


def hostvars() -> dict[str, dict[str, Any]]:
    return {
        "kvm1": {
            "ansible_host": "127.0.0.11",
            "ansible_port": 2222,
            "ansible_user": "root",
            "ansible_connection": "ssh",
            "ansible_password": "hunter2",
            "ansible_ssh_pass": "hunter2",
            "ansible_become_password": "hunter2",
            "ansible_ssh_private_key_file": "/root/.ssh/id_ed25519",
            "ansible_python_interpreter": "/usr/bin/python3",
            "vqual_target_kinds": ["linux_host", "kvm_host"],
            "vqual_cluster": "c1",
            "vqual_applications": [{"name": "LIMS", "risk": "high", "vm": "vm-lims"}],
            "vqual_expected": {"os_version": "12", "bmc": {"admin_password": "s3cret"}},
            "vqual_vcenter_api_key": "abc123",
            "vqual_site": "building-7",
            "unrelated_var": "not recorded",
        },
        "kvm2": {
            "vqual_target_kinds": ["kvm_host"],
            "vqual_cluster": "c1",
            "vqual_risk": "medium",
        },
    }


GROUPS = {"all": ["kvm1", "kvm2"], "ungrouped": [], "kvm": ["kvm1", "kvm2"], "site_a": ["kvm1"]}


def test_hosts_are_read_with_their_vqual_variables() -> None:
    model = InventoryModel.from_hostvars(hostvars(), GROUPS)
    assert list(model.hosts) == ["kvm1", "kvm2"]
    kvm1 = model.host("kvm1")
    assert kvm1.kinds == ("linux_host", "kvm_host")
    assert kvm1.groups == ("kvm", "site_a")
    assert kvm1.cluster == "c1"
    (app,) = kvm1.applications
    assert (app.name, app.risk, app.validated, app.vm, app.host) == (
        "LIMS",
        "high",
        True,
        "vm-lims",
        "kvm1",
    )
    assert kvm1.expected["os_version"] == "12"
    assert model.host("kvm2").risk_floor == "medium"
    assert model.host("kvm2").applications == ()
    assert model.cluster_members("c1") == ("kvm1", "kvm2")
    assert model.clusters() == {"c1": ("kvm1", "kvm2")}


def test_unknown_host_is_bad_input() -> None:
    model = InventoryModel.from_hostvars(hostvars(), GROUPS)
    with pytest.raises(BadInputError, match="unknown host 'kvm9'"):
        model.host("kvm9")


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("vqual_target_kinds", "kvm_host", "vqual_target_kinds: must be a list of strings"),
        ("vqual_target_kinds", ["kvm_host", "xen"], "vqual_target_kinds: unknown kind 'xen'"),
        ("vqual_cluster", ["c1"], "vqual_cluster: must be a cluster name"),
        ("vqual_cluster", "", "vqual_cluster: must be a cluster name"),
        ("vqual_risk", "critical", "vqual_risk: 'critical' is not one of low, medium, high"),
        ("vqual_expected", ["a"], "vqual_expected: must be a mapping"),
        ("vqual_applications", {"name": "LIMS"}, "vqual_applications: must be a list"),
        ("vqual_applications", ["LIMS"], "vqual_applications[0]: must be a mapping"),
        ("vqual_applications", [{"risk": "high"}], "vqual_applications[0].name: a non-empty"),
        (
            "vqual_applications",
            [{"name": "A", "risk": "low"}, {"name": "B", "risk": "HIGH"}],
            "vqual_applications[1].risk: 'HIGH' is not one of",
        ),
        (
            "vqual_applications",
            [{"name": "A", "risk": "low", "validated": "yes"}],
            "vqual_applications[0].validated: must be true or false",
        ),
        (
            "vqual_applications",
            [{"name": "A", "risk": "low", "vm": 7}],
            "vqual_applications[0].vm: must be a VM name",
        ),
        ("vqual_weird", {1: "x"}, "vqual_weird: key 1 is not a string"),
        ("vqual_weird", {"a": float("nan")}, "vqual_weird.a: non-finite number"),
        ("vqual_weird", {"a": {1, 2}}, "vqual_weird.a: value of type set cannot be recorded"),
    ],
)
def test_bad_variables_name_host_and_variable(variable: str, value: Any, fragment: str) -> None:
    data = hostvars()
    data["kvm2"][variable] = value
    with pytest.raises(BadInputError) as info:
        InventoryModel.from_hostvars(data, GROUPS)
    assert str(info.value).startswith("inventory host 'kvm2': ")
    assert fragment in str(info.value)


def test_group_member_without_host_variables() -> None:
    with pytest.raises(BadInputError, match="group 'kvm': host 'kvm3' has no host variables"):
        InventoryModel.from_hostvars(hostvars(), {"kvm": ["kvm1", "kvm3"]})


def test_validated_defaults_to_true_and_can_be_false() -> None:
    data = hostvars()
    data["kvm2"]["vqual_applications"] = [
        {"name": "Wiki", "risk": "low", "validated": False},
        {"name": "MES", "risk": "medium"},
    ]
    apps = InventoryModel.from_hostvars(data, GROUPS).host("kvm2").applications
    assert [app.validated for app in apps] == [False, True]


def test_snapshot_records_connection_and_vqual_variables_with_secrets_redacted() -> None:
    snap = InventoryModel.from_hostvars(hostvars(), GROUPS).snapshot()
    kvm1 = snap["hosts"]["kvm1"]
    assert kvm1["groups"] == ["kvm", "site_a"]
    assert kvm1["ansible_host"] == "127.0.0.11"
    assert kvm1["ansible_port"] == 2222
    assert kvm1["ansible_user"] == "root"
    assert kvm1["ansible_connection"] == "ssh"
    assert kvm1["vqual_site"] == "building-7"
    assert kvm1["vqual_vcenter_api_key"] == "<redacted>"
    assert kvm1["vqual_expected"] == {"os_version": "12", "bmc": {"admin_password": "<redacted>"}}
    for key in kvm1:
        assert key.startswith("vqual_") or key in {
            "groups",
            "ansible_host",
            "ansible_port",
            "ansible_user",
            "ansible_connection",
        }
    text = json.dumps(snap)
    assert "hunter2" not in text
    assert "s3cret" not in text
    assert "abc123" not in text
    assert "id_ed25519" not in text
    assert "unrelated_var" not in text


def test_unredacted_snapshot_keeps_vqual_values_but_never_ansible_secrets() -> None:
    snap = InventoryModel.from_hostvars(hostvars(), GROUPS).snapshot(redact=False)
    kvm1 = snap["hosts"]["kvm1"]
    assert kvm1["vqual_vcenter_api_key"] == "abc123"
    assert kvm1["vqual_expected"]["bmc"]["admin_password"] == "s3cret"
    assert "hunter2" not in json.dumps(snap)
    assert "ansible_ssh_private_key_file" not in kvm1


def test_snapshot_is_a_copy() -> None:
    model = InventoryModel.from_hostvars(hostvars(), GROUPS)
    model.snapshot(redact=False)["hosts"]["kvm1"]["vqual_expected"]["os_version"] = "13"
    assert model.host("kvm1").expected["os_version"] == "12"


def test_digest_is_sha256_of_the_canonical_redacted_snapshot() -> None:
    model = InventoryModel.from_hostvars(hostvars(), GROUPS)
    expected = hashlib.sha256(canonical_bytes(model.snapshot(redact=True))).hexdigest()
    assert model.digest == expected


def test_digest_is_rfc8785_where_plain_json_would_differ() -> None:
    # Floats and keys outside the BMP are where json.dumps and RFC 8785 part: 1.0 is "1",
    # 1e16 is written out, keys sort by UTF-16 code units. The digest is the reference
    # encoder's (rfc8785), never json.dumps's, with no fallback to choose between them.
    expected = {"ratio": 1.0, "big": 1e16, "z\u00e9": "x", "\U0001F600": 1, "\uE000": 2}
    model = InventoryModel.from_hostvars(
        {"h1": {"vqual_target_kinds": ["linux_host"], "vqual_expected": expected}}, {"all": ["h1"]}
    )
    snapshot = model.snapshot(redact=True)
    assert model.digest == hashlib.sha256(rfc8785.dumps(snapshot)).hexdigest()
    for ensure_ascii in (True, False):
        plain = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
        assert model.digest != hashlib.sha256(plain.encode("utf-8")).hexdigest()


def test_digest_ignores_order_and_secrets_but_not_site_values() -> None:
    base = InventoryModel.from_hostvars(hostvars(), GROUPS).digest
    reordered = dict(reversed(list(hostvars().items())))
    assert InventoryModel.from_hostvars(reordered, GROUPS).digest == base
    other_secret = hostvars()
    other_secret["kvm1"]["vqual_vcenter_api_key"] = "rotated"
    other_secret["kvm1"]["ansible_password"] = "rotated"
    assert InventoryModel.from_hostvars(other_secret, GROUPS).digest == base
    other_value = hostvars()
    other_value["kvm1"]["vqual_expected"]["os_version"] = "13"
    assert InventoryModel.from_hostvars(other_value, GROUPS).digest != base


def test_subclasses_of_plain_types_are_recorded_as_plain_values() -> None:
    class UnsafeText(str):
        pass

    class TaggedInt(int):
        pass

    class TaggedFloat(float):
        pass

    class TaggedDict(dict[str, Any]):
        pass

    class TaggedList(list[Any]):
        pass

    data = hostvars()
    data["kvm2"]["vqual_site"] = UnsafeText("building-9")
    data["kvm2"]["vqual_expected"] = TaggedDict(
        cpus=TaggedInt(8), ghz=TaggedFloat(2.5), ntp=TaggedList([UnsafeText("a")])
    )
    vqual = InventoryModel.from_hostvars(data, GROUPS).host("kvm2").vqual
    assert type(vqual["vqual_site"]) is str
    expected = vqual["vqual_expected"]
    assert type(expected) is dict
    assert [type(expected[k]) for k in ("cpus", "ghz", "ntp")] == [int, float, list]
    assert type(expected["ntp"][0]) is str
    assert expected == {"cpus": 8, "ghz": 2.5, "ntp": ["a"]}


def test_dates_are_recorded_as_iso_text() -> None:
    data = hostvars()
    data["kvm2"]["vqual_qualified_on"] = datetime.date(2026, 1, 31)
    data["kvm2"]["vqual_window"] = datetime.datetime(2026, 1, 31, 22, 0, tzinfo=datetime.UTC)
    snap = InventoryModel.from_hostvars(data, GROUPS).snapshot()["hosts"]["kvm2"]
    assert snap["vqual_qualified_on"] == "2026-01-31"
    assert snap["vqual_window"] == "2026-01-31T22:00:00+00:00"


def test_big_integers_are_recorded_as_strings_but_kept_for_planning() -> None:
    data = hostvars()
    data["kvm2"]["vqual_expected"] = {"shmmax": 18446744073692774399, "small": 2**53 - 1}
    model = InventoryModel.from_hostvars(data, GROUPS)
    recorded = model.snapshot()["hosts"]["kvm2"]["vqual_expected"]
    assert recorded == {"shmmax": "18446744073692774399", "small": 2**53 - 1}
    assert model.host("kvm2").expected["shmmax"] == 18446744073692774399
    assert len(model.digest) == 64


def test_digest_is_sha256_of_the_evidence_canonical_form() -> None:
    from qualification.evidence.canonical import canonical_bytes

    data = hostvars()
    data["kvm2"]["vqual_expected"] = {"shmmax": 18446744073692774399, "name": "\u00e9t\u00e9"}
    model = InventoryModel.from_hostvars(data, GROUPS)
    assert model.digest == hashlib.sha256(canonical_bytes(model.snapshot())).hexdigest()
