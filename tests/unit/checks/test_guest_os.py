"""Guest OS support (URS-HV-01): the data file, each platform's guest OS identity, and the
findings; vSphere's guest ids are mapped without a simulator (a fixed table of real ids)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.checks import evaluate, get_check
from qualification.checks.base import Observation
from qualification.checks.guest_os import (
    from_os_release,
    from_osinfo,
    from_vsphere_guest_id,
    guest_os_findings,
    load_guest_os_support,
)
from qualification.errors import BadInputError
from qualification.verdict import Verdict

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "ansible_collections/vqual/qualification/specs/data/guest-os-example.yaml"
)
ENTRIES = load_guest_os_support(EXAMPLE.read_text(), str(EXAMPLE))


@pytest.mark.parametrize(
    ("os_id", "identity"),
    [
        ("http://debian.org/debian/12", ("debian", "12")),
        ("http://redhat.com/rhel/9.2", ("rhel", "9.2")),
        ("http://ubuntu.com/ubuntu/22.04", ("ubuntu", "22.04")),
        ("http://microsoft.com/win/2k19", ("windows-server", "2019")),
        ("http://microsoft.com/win/11", ("windows", "11")),
        ("not-an-id", None),
    ],
)
def test_libosinfo_ids_become_os_and_version(os_id, identity):
    assert from_osinfo(os_id) == identity


@pytest.mark.parametrize(
    ("guest_id", "identity"),
    [
        ("debian12_64Guest", ("debian", "12")),
        ("debian11Guest", ("debian", "11")),
        ("rhel9_64Guest", ("rhel", "9")),
        ("oracleLinux8_64Guest", ("ol", "8")),
        ("windows2019srv_64Guest", ("windows-server", "2019")),
        ("windows2019srvNext_64Guest", ("windows-server", "2022")),
        ("windows2022srvNext_64Guest", ("windows-server", "2025")),
        ("windows9Server64Guest", ("windows-server", "2016")),
        ("ubuntu64Guest", ("ubuntu", None)),
        ("otherLinux64Guest", ("other-linux", None)),
        ("solaris11_64Guest", None),
    ],
)
def test_vsphere_guest_ids_become_os_and_version(guest_id, identity):
    assert from_vsphere_guest_id(guest_id) == identity


def test_os_release_gives_id_and_version_id():
    assert from_os_release({"ID": "debian", "VERSION_ID": "12"}) == ("debian", "12")
    assert from_os_release({"NAME": "x"}) is None


def _guest(name, identity, source="test"):
    os_id, version = identity or (None, None)
    return {"name": name, "os": os_id, "version": version, "source": source}


def test_a_supported_guest_gives_no_finding_and_each_miss_names_the_vm():
    guests = [
        _guest("vm-ok", from_vsphere_guest_id("debian12_64Guest")),
        _guest("vm-old", from_vsphere_guest_id("debian11Guest")),
        _guest("vm-2016", from_vsphere_guest_id("windows9Server64Guest")),
        _guest("vm-ubuntu", from_vsphere_guest_id("ubuntu64Guest")),
        _guest("vm-x", None, "no guest id"),
    ]
    findings = guest_os_findings("VMware ESXi", "8.0.2", guests, ENTRIES)
    assert len(findings) == 3
    assert findings[0].startswith("vm-2016: windows-server 2016 is not supported by VMware ESXi 8.0.2")
    assert "(listed: debian 11, 12; rhel 8, 9; windows-server 2019, 2022)" in findings[0]
    assert findings[1].startswith("vm-ubuntu: ubuntu (version unknown) is not supported")
    assert findings[2] == "vm-x: guest OS not identified (no guest id)"
    assert guest_os_findings("VMware ESXi", "6.0.0", guests[:1], ENTRIES) == [
        "vm-ok: debian 12: VMware ESXi 6.0.0 is not on the guest OS support list"
    ]


def test_the_check_decides_on_the_probe_value():
    check = get_check("libvirt_guest_os")
    value = {
        "hypervisor": {"product": "QEMU", "version": "7.2.0"},
        "guests": [_guest("vm-a", ("rhel", "9.2")), _guest("vm-b", ("rhel", "7.9"))],
        "entries": [e.to_json() for e in ENTRIES],
    }
    outcome = evaluate(check, Observation(value=value), {"support": "guest_os"}, {"op": "absent"})
    assert outcome.verdict == Verdict.FAIL
    assert outcome.observed == [
        ("vm-b: rhel 7.9 is not supported by QEMU 7.2.0 (listed: debian 11, 12; rhel 8.*, 9.*; "
        "ubuntu 22.04, 24.04; windows-server 2019, 2022)")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: HardwareCompatibilityList\napiVersion: vqual/v1\n", "not a guest OS support list"),
        ("apiVersion: vqual/v1\nkind: GuestOsSupportList\nentries: []\n", "non-empty list"),
        (("apiVersion: vqual/v1\nkind: GuestOsSupportList\nentries:\n"
         "  - {hypervisor: {product: QEMU, versions: [8.0]}, guests: [{os: debian}]}\n"),
         "entries[0].guests[0].versions must be a non-empty list"),
        ("apiVersion: vqual/v1\nkind: GuestOsSupportList\nentries:\n  - {guests: []}\n",
         "entries[0].hypervisor must have product and versions"),
    ],
)
def test_a_malformed_list_is_refused_naming_file_and_entry(text, message):
    with pytest.raises(BadInputError) as err:
        load_guest_os_support(text, "support.yaml")
    assert message in err.value.one_line() and "support.yaml" in err.value.one_line()


def test_vsphere_guests_are_judged_by_the_esxi_version_of_their_host():
    check = get_check("vsphere_guest_os")
    assert check.request({"support": "guest_os"}).probe == "vsphere"
    debian10 = from_vsphere_guest_id("debian10_64Guest")
    value = {
        "hypervisors": {
            "esx65": {"product": "VMware ESXi", "version": "6.5.0"},
            "esx80": {"product": "VMware ESXi", "version": "8.0.2"},
            "esx-silent": {"product": None, "version": None},
        },
        "guests": [
            {**_guest("vm-on-65", debian10), "host": "esx65"},
            {**_guest("vm-on-80", debian10), "host": "esx80"},
            {**_guest("vm-quiet", debian10), "host": "esx-silent"},
        ],
        "entries": [e.to_json() for e in ENTRIES],
    }
    outcome = evaluate(check, Observation(value=value), {"support": "guest_os"}, {"op": "absent"})
    assert outcome.verdict == Verdict.FAIL
    # debian 10 is listed for 6.5 (the simulator's entry), not for 8.0
    assert outcome.observed == [
        ("vm-on-80: debian 10 is not supported by VMware ESXi 8.0.2 (listed: debian 11, 12; "
         "rhel 8, 9; windows-server 2019, 2022)"),
        "vm-quiet: its host esx-silent reports no product and version",
    ]
    assert check.validate_params({}) is not None
    assert check.validate_params({"support": "guest_os", "x": 1}) is not None
