"""Clone qualification by difference: the master bundle's refusals and the comparison check.

The master bundles here are real, signed and sealed (``BundleWriter``), judged by the real
verifier and trust store; an approval is a real ``vqual sign`` signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qualification import checks
from qualification.baseline import fingerprint_record
from qualification.baseline.clones import _main as clones_main
from qualification.baseline.clones import clone_names
from qualification.baseline.master import approval_of, load_master
from qualification.checks.base import Observation
from qualification.checks.fingerprint_model import Fingerprint, make_fingerprint
from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    BadInputError,
    EvidenceInvalidError,
)
from qualification.evidence.bundle import BundleWriter
from qualification.execution.references import with_references
from qualification.platforms.libvirt.clones import overlay_xml
from qualification.review.esign import sign_bundle
from qualification.review.signed import load_trust
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    Keys,
    add_renderings,
    make_keys,
    run_start_data,
)

RUN = "20260301T100000Z-0a0b0c"

GUEST: dict[str, Any] = {
    "os_release": {"ID": "debian", "VERSION_ID": "12"},
    "kernel": {"release": "6.1.0-56-amd64"},
    "packages": {"openssh-server": "1:9.2p1-2+deb12u7", "busybox": "1:1.35.0-4+b3"},
    "services": {"sshd": "running", "qemu-ga": "running"},
    "users": [{"name": "root", "uid": 0, "gid": 0, "shell": "/bin/sh", "home": "/root"}],
    "groups": [{"name": "root", "gid": 0}],
    "files": {"/etc/ssh/sshd_config": "aa" * 32, "/etc/motd": "bb" * 32},
    "security": {"permitrootlogin": "prohibit-password"},
}
MASTER_IDENTITY = {
    "name": "master",
    "uuid": "11111111-2222-3333-4444-555555555555",
    "macs": ["52:54:00:00:00:01"],
    "hostname": "vqual-template",
    "machine_id": "",
}
VM = {
    "vcpus": 1,
    "memory_mib": 384,
    "firmware": "bios",
    "secure_boot": None,
    "machine": "pc-q35-7.2",
    "arch": "x86_64",
    "disks": [
        {"target": "vda", "device": "disk", "bus": "virtio", "format": "raw",
         "capacity": 2147483648, "readonly": False}
    ],
    "nics": [{"model": "virtio", "network": "user", "kind": "user"}],
    "devices": ["rng", "channel"],
}


def master_fp(subject: str = "master") -> Fingerprint:
    return make_fingerprint(
        subject, "vm", vm=VM, guest=GUEST, identity={**MASTER_IDENTITY, "name": subject},
        generalised={"machine_id_empty": True, "ssh_host_keys": []},
    )


def write_master(
    evidence: Path,
    keys: Keys,
    *,
    run_id: str = RUN,
    fingerprints: list[Fingerprint] | None = None,
    verdict: str = "pass",
    seal: bool = True,
) -> Path:
    """A sealed master run: run.start, one result, the fingerprint records, run.end."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    start = run_start_data()
    start["planned"] = [{"test_id": "IQ-MVM-001", "target": "master", "protocol": "IQ"}]
    w.append("run.start", start)
    w.add_file("spec.yaml", b"apiVersion: vqual/v1\nkind: Protocol\n")
    w.add_file("data/hcl.csv", b"vendor,model,version\n")
    w.add_file("inventory.json", b'{"all":{"hosts":["master"]}}')
    w.append(
        "check.result",
        {
            "test_id": "IQ-MVM-001", "title": "fingerprint", "protocol": "IQ",
            "requirements": ["URS-VM-01"], "target": "master", "check": "host_fingerprint",
            "method": "host.fingerprint", "expected": {"op": "absent"}, "observed": None,
            "verdict": verdict, "reason": None, "raw": None,
            "started": "2026-03-01T10:00:00.000000Z", "finished": "2026-03-01T10:00:01.000000Z",
            "duration_ms": 1.0,
        },
    )
    for fp in [master_fp()] if fingerprints is None else fingerprints:
        w.append("fingerprint", fingerprint_record(fp))
    if not seal:
        w.close()
        return w.path
    add_renderings(w)  # format v2 seals no JUnit or report placeholders
    counts = {"pass": 0, "fail": 0, "error": 0, "not-executed": 0, "waived": 0}
    counts[verdict] += 1
    w.seal(counts, 1, 1, verdict)
    return w.path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Keys, Path]:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys)
    return state, keys, bundle


def approve(state: Path, keys: Keys, bundle: Path, meaning: str = "approved") -> None:
    sign_bundle(bundle, keys.approver, load_trust(state), meaning, "master qualified")


# --- the master bundle -------------------------------------------------------------------


def test_an_approved_master_gives_its_seal_and_fingerprint_digest(setup: tuple[Path, Keys, Path]) -> None:
    state, keys, bundle = setup
    approve(state, keys, bundle)
    master = load_master(bundle, state_dir=state, require_approval=True)
    run_end_line = (bundle / "records.jsonl").read_bytes().splitlines()[3]
    import hashlib

    assert master.seal == hashlib.sha256(run_end_line).hexdigest()
    assert master.subject == "master"
    assert master.fingerprint_digest == master_fp().digest()
    assert master.approval is not None and master.approval["name"] == "Anna Approver"
    assert (master.change_id, master.run_id) == (CHANGE, RUN)
    record = master.record({"identity": ["hostname"], "sizing": {}})
    assert record["master_seal"] == master.seal
    assert record["master_fingerprint"] == {"subject": "master", "digest": master.fingerprint_digest}


def test_an_unapproved_master_is_refused_where_approval_is_required(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    with pytest.raises(BadInputError, match="is not approved.*no 'approved' signature") as info:
        load_master(bundle, state_dir=state, require_approval=True)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert str(bundle) in info.value.one_line()
    # where the spec does not require approval the same bundle serves, citing no approval
    assert load_master(bundle, state_dir=state, require_approval=False).approval is None


def test_a_rejection_after_the_approval_withdraws_it(setup: tuple[Path, Keys, Path]) -> None:
    state, keys, bundle = setup
    approve(state, keys, bundle)
    approve(state, keys, bundle, "rejected")
    with pytest.raises(BadInputError, match="rejected by Anna Approver"):
        load_master(bundle, state_dir=state, require_approval=True)


def test_a_reviewed_only_master_is_not_approved(setup: tuple[Path, Keys, Path]) -> None:
    state, keys, bundle = setup
    sign_bundle(bundle, keys.reviewer, load_trust(state), "reviewed", None)
    with pytest.raises(BadInputError, match="is not approved"):
        load_master(bundle, state_dir=state, require_approval=True)


def test_a_tampered_master_bundle_is_refused_with_exit_1(setup: tuple[Path, Keys, Path]) -> None:
    state, keys, bundle = setup
    approve(state, keys, bundle)
    lines = (bundle / "records.jsonl").read_bytes().splitlines(keepends=True)
    # the fingerprint record (line 3): change one byte of its signed payload
    envelope = json.loads(lines[2])
    payload = envelope["payload"]
    envelope["payload"] = payload[:40] + ("A" if payload[40] != "A" else "B") + payload[41:]
    lines[2] = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    (bundle / "records.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(EvidenceInvalidError, match="does not verify: records.jsonl line 3") as info:
        load_master(bundle, state_dir=state, require_approval=True)
    assert info.value.exit_code == EXIT_FAILED


def test_an_edited_sealed_file_in_the_master_bundle_is_refused(setup: tuple[Path, Keys, Path]) -> None:
    state, keys, bundle = setup
    approve(state, keys, bundle)
    (bundle / "inventory.json").write_bytes(b'{"all":{"hosts":["other"]}}')
    with pytest.raises(EvidenceInvalidError, match="does not verify: inventory.json"):
        load_master(bundle, state_dir=state, require_approval=False)


def test_an_unfinished_master_run_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys, seal=False)
    with pytest.raises(EvidenceInvalidError, match="did not finish") as info:
        load_master(bundle, state_dir=state, require_approval=False)
    assert info.value.exit_code == EXIT_FAILED


def test_a_master_without_a_fingerprint_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys, fingerprints=[])
    with pytest.raises(BadInputError, match="has no fingerprint record") as info:
        load_master(bundle, state_dir=state, require_approval=False)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_a_master_whose_run_failed_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys, verdict="fail")
    with pytest.raises(BadInputError, match="verdict is 'fail'"):
        load_master(bundle, state_dir=state, require_approval=False)


def test_several_vm_fingerprints_need_a_subject(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys, fingerprints=[master_fp("m1"), master_fp("m2")])
    with pytest.raises(BadInputError, match=r"several VMs \(m1, m2\)"):
        load_master(bundle, state_dir=state, require_approval=False)
    assert load_master(bundle, state_dir=state, require_approval=False, subject="m2").subject == "m2"
    with pytest.raises(BadInputError, match="no fingerprint of 'm3'"):
        load_master(bundle, state_dir=state, require_approval=False, subject="m3")


def test_a_directory_that_is_no_bundle_is_bad_input(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make_keys(state, pinned=True)
    with pytest.raises(BadInputError, match="not an evidence bundle"):
        load_master(tmp_path, state_dir=state, require_approval=False)


def test_approval_of_takes_the_latest_decision() -> None:
    approved = {"meaning": "approved", "seq": 5, "name": "A", "keyid": "k", "time": "t", "seal": "s"}
    rejected = {"meaning": "rejected", "seq": 6, "name": "B", "time": "t2"}
    assert approval_of([approved])[0] is not None
    assert approval_of([approved, rejected])[0] is None
    assert approval_of([rejected, {**approved, "seq": 7}])[0] is not None
    assert approval_of([{"meaning": "reviewed", "seq": 4}]) == (
        None, "it carries no 'approved' signature (vqual sign BUNDLE --meaning approved)"
    )


# --- the comparison check --------------------------------------------------------------


def compare_clone(
    bundle: Path, state: Path, value: dict[str, Any], *, part: str = "guest",
    allowed: dict[str, Any] | None = None, what: list[str] | None = None,
) -> tuple[str, Any, str | None]:
    master = load_master(bundle, state_dir=state, require_approval=False)
    params: dict[str, Any] = {"part": part, "master": master.reference()}
    params["allowed"] = allowed if allowed is not None else {
        "identity": ["name", "uuid", "macs", "hostname", "machine_id", "addresses", "ssh_host_keys"],
        "sizing": {},
    }
    if what:
        params["what"] = what
    check = checks.get_check("clone_fingerprint")
    assert check.validate_params(params) is None
    outcome = checks.evaluate(check, Observation(value=value),
                              with_references(check.name, params), {"op": "absent"})
    return outcome.verdict, outcome.observed, outcome.reason


def clone_guest(**changes: Any) -> dict[str, Any]:
    guest = json.loads(json.dumps(GUEST))
    guest.update(changes)
    return {
        "guest": guest,
        "identity": {"hostname": "clone1", "machine_id": "ab" * 16,
                     "ssh_host_keys": ["SHA256:xyz"], "addresses": ["10.0.2.15"]},
        "generalised": {"machine_id_empty": False, "ssh_host_keys": ["ed25519"]},
    }


def test_an_unchanged_clone_passes_though_its_identity_differs(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    verdict, observed, _ = compare_clone(bundle, state, clone_guest())
    assert (verdict, observed) == ("pass", [])


def test_a_package_a_user_and_a_file_are_named_exactly(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    value = clone_guest(
        packages={**GUEST["packages"], "curl": "7.88.1-10+deb12u8"},
        users=GUEST["users"] + [{"name": "eve", "uid": 1001, "gid": 1001, "shell": "/bin/sh", "home": "/home/eve"}],
        files={**GUEST["files"], "/etc/motd": "cc" * 32},
    )
    verdict, observed, reason = compare_clone(bundle, state, value)
    assert verdict == "fail"
    assert observed == [
        {"what": "file", "where": "/etc/motd", "master": "bb" * 32, "clone": "cc" * 32},
        {"what": "package", "where": "curl", "master": None, "clone": "7.88.1-10+deb12u8"},
        {"what": "user", "where": "eve", "master": None,
         "clone": {"name": "eve", "uid": 1001, "gid": 1001, "shell": "/bin/sh", "home": "/home/eve"}},
    ]
    assert reason is not None and "/etc/motd" in reason


def test_the_hostname_is_reported_only_when_the_spec_does_not_allow_it(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    verdict, observed, _ = compare_clone(
        bundle, state, clone_guest(), allowed={"identity": ["machine_id", "ssh_host_keys", "addresses"]}
    )
    assert verdict == "fail"
    assert observed == [
        {"what": "identity.hostname", "where": "hostname", "master": "vqual-template", "clone": "clone1"}
    ]


def test_what_limits_a_test_to_some_kinds_of_difference(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    value = clone_guest(packages={**GUEST["packages"], "curl": "7.88"}, files={})
    verdict, observed, _ = compare_clone(bundle, state, value, what=["package"])
    assert verdict == "fail"
    assert [d["where"] for d in observed] == ["curl"]


def vm_facts(**changes: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "name": "clone1", "uuid": "99999999-2222-3333-4444-555555555555",
        "vcpus": 1, "memory_mib": 384, "firmware": "bios", "secure_boot": None,
        "machine": "pc-q35-7.2", "arch": "x86_64",
        "disks": [{"target": "vda", "device": "disk", "bus": "virtio", "driver_format": "raw",
                   "capacity": 2147483648, "readonly": False}],
        "nics": [{"model": "virtio", "network": "user", "kind": "user", "mac": "52:54:00:aa:bb:cc"}],
        "devices": ["channel", "rng"],
    }
    facts.update(changes)
    return facts


def test_vm_part_sizing_inside_its_range_passes_and_outside_fails(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    allowed = {"identity": ["name", "uuid", "macs"], "sizing": {"vcpus": {"min": 1, "max": 2},
                                                                 "memory_mib": {"min": 256, "max": 1024}}}
    inside = compare_clone(bundle, state, vm_facts(vcpus=2, memory_mib=1024), part="vm", allowed=allowed)
    assert inside[:2] == ("pass", [])
    verdict, observed, _ = compare_clone(bundle, state, vm_facts(vcpus=4), part="vm", allowed=allowed)
    assert verdict == "fail"
    assert observed == [{"what": "vm.vcpus", "where": "vcpus", "master": 1, "clone": 4,
                         "detail": "outside the allowed range [1, 2]"}]
    # without a range a sizing value must equal the master's
    verdict, observed, _ = compare_clone(
        bundle, state, vm_facts(memory_mib=512), part="vm", allowed={"identity": ["name", "uuid", "macs"]}
    )
    assert (verdict, [d["what"] for d in observed]) == ("fail", ["vm.memory_mib"])


def test_vm_part_other_hardware_differences_fail(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    verdict, observed, _ = compare_clone(
        bundle, state, vm_facts(firmware="efi", devices=["channel"]), part="vm"
    )
    assert verdict == "fail"
    assert [(d["what"], d["where"]) for d in observed] == [("vm.device", "rng"), ("vm.firmware", "firmware")]


def test_a_master_bundle_resealed_after_the_plan_gives_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, pinned=True)
    bundle = write_master(tmp_path / "ev", keys)
    master = load_master(bundle, state_dir=state, require_approval=False)
    params = {"part": "guest", "master": {**master.reference(), "seal": "00" * 32}, "allowed": None}
    check = checks.get_check("clone_fingerprint")
    params = with_references(check.name, params)
    outcome = checks.evaluate(check, Observation(value=clone_guest()), params, {"op": "absent"})
    assert outcome.verdict == "error"
    assert "the one verified when the run was planned" in str(outcome.reason)
    params = {"part": "guest", "master": {**master.reference(), "digest": "11" * 32}, "allowed": None}
    params = with_references(check.name, params)
    outcome = checks.evaluate(check, Observation(value=clone_guest()), params, {"op": "absent"})
    assert outcome.verdict == "error" and "not " + "11" * 32 in str(outcome.reason)


def test_without_a_master_reference_the_check_is_an_error_not_a_pass() -> None:
    check = checks.get_check("clone_fingerprint")
    outcome = checks.evaluate(check, Observation(value=clone_guest()), {"part": "guest"}, {"op": "absent"})
    assert outcome.verdict == "error"
    assert "no master fingerprint" in str(outcome.reason)


def test_the_check_shares_the_fingerprint_probe_request() -> None:
    params = {"files": ["/etc/ssh/*"], "max_files": 100}
    clone = checks.get_check("clone_fingerprint").request({**params, "part": "guest", "what": ["file"]})
    host = checks.get_check("host_fingerprint").request(params)
    assert clone.key() == host.key()
    vm = checks.get_check("clone_fingerprint").request({"part": "vm", "platform": "vsphere"})
    assert vm.key() == checks.get_check("vm_fingerprint").request({"platform": "vsphere"}).key()


def test_check_params_are_validated() -> None:
    check = checks.get_check("clone_fingerprint")
    assert "part must be one of" in str(check.validate_params({"part": "disk"}))
    assert "what must be a list" in str(check.validate_params({"what": "package"}))
    assert "clone_fingerprint (part vm)" in str(check.validate_params({"part": "vm", "platform": "xen"}))
    assert "master must be" in str(check.validate_params({"master": {"bundle": 1}}))
    assert check.validate_params({"part": "guest", "files": ["/etc/*"]}) is None


# --- creating clones ----------------------------------------------------------------------

MASTER_XML = """<domain type='qemu'>
  <name>master</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <memory unit='KiB'>393216</memory>
  <vcpu>1</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/guests/master.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'>
      <mac address='52:54:00:00:00:01'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>"""


def test_overlay_xml_gives_a_new_name_no_uuid_or_mac_and_the_overlay_disk() -> None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(overlay_xml(MASTER_XML, "vqual-tmp-c1", {"vda": "/srv/guests/vqual-tmp-c1-vda.qcow2"}))
    assert root.findtext("name") == "vqual-tmp-c1"
    assert root.find("uuid") is None
    assert root.find("devices/interface/mac") is None
    disk = root.find("devices/disk")
    assert disk is not None
    assert disk.find("source").get("file") == "/srv/guests/vqual-tmp-c1-vda.qcow2"  # type: ignore[union-attr]
    assert disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    # the sizing and the rest of the hardware stay the master's
    assert root.findtext("vcpu") == "1" and root.findtext("memory") == "393216"


def test_clone_names() -> None:
    assert clone_names(2, "vqual-tmp-c") == ["vqual-tmp-c-1", "vqual-tmp-c-2"]
    with pytest.raises(BadInputError, match="at least 1"):
        clone_names(0, "x")
    with pytest.raises(BadInputError, match="not a safe VM name"):
        clone_names(1, "../x")


def test_the_clone_steps_go_to_the_platform_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    # playbooks/clone_qualify.yml runs ``create-<platform>``; the platform's plug-in answers.
    assert clones_main(["create-xen", "u", "master", "c1"]) == EXIT_BAD_INPUT
    assert "unknown platform 'xen' (known: hyperv, libvirt, vsphere)" in capsys.readouterr().err
    assert clones_main(["create-libvirt", "u", "master", "../c1"]) == EXIT_BAD_INPUT
    assert "not a safe VM name" in capsys.readouterr().err
    assert clones_main(["create-hyperv", "h", "master", "c1"]) == 4
    assert "create_clone not supported: platform hyperv has no create_clone hook" in (
        capsys.readouterr().err
    )
    assert clones_main(["nonsense"]) == EXIT_BAD_INPUT
    assert "usage:" in capsys.readouterr().err


def test_a_libvirt_clone_is_an_overlay_with_its_own_identity() -> None:
    """On libvirt's test driver (state shared in this process while a connection is open)."""
    import xml.etree.ElementTree as ET

    import libvirt

    from qualification.errors import PlatformError
    from qualification.platforms.libvirt.clones import create_libvirt_clone, remove_libvirt_clone

    keep = libvirt.open("test:///default")
    try:
        pool = keep.storagePoolLookupByName("default-pool")
        vol = pool.createXML(
            "<volume><name>tmaster.img</name><capacity>1048576</capacity>"
            "<target><format type='raw'/></target></volume>", 0
        )
        master_xml = MASTER_XML.replace("/srv/guests/master.img", vol.path()).replace(
            "<name>master</name>", "<name>tmaster</name>"
        ).replace("type='qemu'>", "type='test'>").replace(
            "<vcpu>1</vcpu>", "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
        )
        master = keep.defineXML(master_xml)
        created = create_libvirt_clone("test:///default", "tmaster", "vqual-tmp-c1")
        root = ET.fromstring(keep.lookupByName("vqual-tmp-c1").XMLDesc(0))
        assert root.findtext("uuid") == created.uuid != master.UUIDString()
        mac = root.find("devices/interface/mac")
        assert mac is not None and created.macs == (mac.get("address"),)
        assert created.macs != ("52:54:00:00:00:01",)
        assert created.disks == ("/default-pool/vqual-tmp-c1-vda.qcow2",)
        overlay = ET.fromstring(pool.storageVolLookupByName("vqual-tmp-c1-vda.qcow2").XMLDesc(0))
        assert overlay.findtext("backingStore/path") == vol.path()
        assert overlay.find("target/format").get("type") == "qcow2"  # type: ignore[union-attr]
        assert root.findtext("vcpu") == "1"  # the master's sizing
        with pytest.raises(PlatformError, match="vqual-tmp-c1 exists"):
            create_libvirt_clone("test:///default", "tmaster", "vqual-tmp-c1")
        master.create()
        with pytest.raises(PlatformError, match="the master is running"):
            create_libvirt_clone("test:///default", "tmaster", "vqual-tmp-c2")
        assert "vqual-tmp-c2-vda.qcow2" not in pool.listVolumes()
        master.destroy()
        remove_libvirt_clone("test:///default", "vqual-tmp-c1")
        assert "vqual-tmp-c1" not in keep.listDefinedDomains()
        assert sorted(v for v in pool.listVolumes() if "tmaster" in v or "vqual" in v) == ["tmaster.img"]
        master.undefine()
        vol.delete(0)
    finally:
        keep.close()


def test_allowed_disk_formats_accept_an_overlay_and_nothing_else(setup: tuple[Path, Keys, Path]) -> None:
    state, _keys, bundle = setup
    qcow2 = [{"target": "vda", "device": "disk", "bus": "virtio", "driver_format": "qcow2",
              "capacity": 2147483648, "readonly": False}]
    identity_only = {"identity": ["name", "uuid", "macs"]}
    verdict, observed, _ = compare_clone(bundle, state, vm_facts(disks=qcow2), part="vm",
                                         allowed=identity_only)
    assert verdict == "fail" and [d["what"] for d in observed] == ["vm.disk"]
    allowed = {**identity_only, "disk_formats": ["qcow2"]}
    assert compare_clone(bundle, state, vm_facts(disks=qcow2), part="vm", allowed=allowed)[:2] == ("pass", [])
    # the format is allowed, a different bus on the same disk is still a difference
    verdict, observed, _ = compare_clone(
        bundle, state, vm_facts(disks=[{**qcow2[0], "bus": "sata"}]), part="vm", allowed=allowed
    )
    assert verdict == "fail" and observed[0]["clone"]["bus"] == "sata"
    # a format not in the list is a difference
    vmdk = [{**qcow2[0], "driver_format": "vmdk"}]
    assert compare_clone(bundle, state, vm_facts(disks=vmdk), part="vm", allowed=allowed)[0] == "fail"
