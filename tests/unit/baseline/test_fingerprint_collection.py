"""Collecting a fingerprint for real: the probe method on a directory tree, on this machine and
on an ext4 image made here; the check types; merging the parts of one target."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from qualification import checks
from qualification.baseline import Fingerprint, compare
from qualification.checks.base import Observation
from qualification.checks.fingerprint import (
    fill_template_images,
    fill_vm_names,
    target_fingerprint,
    vm_part,
)

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"


def _load() -> ModuleType:
    path = COLLECTION / "plugins" / "module_utils" / "host_observations.py"
    spec = importlib.util.spec_from_file_location("vqual_host_observations_fp", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ho = _load()

STATUS = """Package: openssh-server
Status: install ok installed
Version: 1:9.2p1-2+deb12u5

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: procps
Status: install ok installed
Version: 2:4.0.2-3
"""


def make_root(root: Path) -> Path:
    """A small guest file system: os-release, dpkg status, passwd/group, key files."""
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "var" / "lib" / "dpkg" / "status").write_text(STATUS)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nadm:x:4:sshd,root\n")
    (root / "etc" / "hostname").write_text("vqual-template\n")
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "ssh" / "sshd_config").write_text("PermitRootLogin prohibit-password\n")
    (root / "etc" / "issue").write_text("Debian GNU/Linux 12\n")
    return root


def test_probe_fingerprints_a_root_tree(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    found = ho.HostObserver().observe(
        "fingerprint", {"root": str(root), "files": ["/etc/ssh/*", "/etc/issue", "/nope/*"]}
    )
    assert found["error"] is None, found["error"]
    value = found["value"]
    guest = value["guest"]
    assert guest["os_release"] == {"ID": "debian", "VERSION_ID": "12"}
    assert guest["packages"] == {"openssh-server": "1:9.2p1-2+deb12u5", "procps": "2:4.0.2-3"}
    assert [u["name"] for u in guest["users"]] == ["root", "sshd"]
    assert {"name": "adm", "gid": 4, "members": ["root", "sshd"]} in guest["groups"]
    digest = hashlib.sha256(b"Debian GNU/Linux 12\n").hexdigest()
    assert guest["files"]["/etc/issue"]["sha256"] == digest
    assert sorted(guest["files"]) == ["/etc/issue", "/etc/ssh/sshd_config"]
    assert guest["security"] == {}  # another root: no sshd -T of this machine
    assert value["generalised"] == {
        "machine_id_empty": True, "ssh_host_keys": [], "persistent_net_rules": False
    }
    assert value["identity"]["hostname"] == "vqual-template"
    assert str(root) in found["method"]


def test_probe_limits_are_errors_not_silent_cuts(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    too_many = ho.HostObserver().observe(
        "fingerprint", {"root": str(root), "files": ["/etc/**"], "max_files": 3}
    )
    assert too_many["value"] is None and "more than 3 files" in too_many["error"]
    relative = ho.HostObserver().observe("fingerprint", {"root": str(root), "files": ["etc/x"]})
    assert "absolute" in relative["error"]


def test_probe_on_this_machine_sees_its_identity() -> None:
    found = ho.HostObserver().observe("fingerprint", {"files": ["/etc/hostname"]})
    assert found["error"] is None, found["error"]
    import socket

    assert found["value"]["identity"]["hostname"] == socket.gethostname()
    assert found["value"]["guest"]["packages"]  # this machine's dpkg database
    assert "/etc/hostname" in found["value"]["guest"]["files"]


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None or ho.shutil.which(
    "debugfs", path=ho.SEARCH_PATH) is None, reason="e2fsprogs (mkfs.ext4, debugfs) not installed")
def test_image_read_offline_gives_the_same_fingerprint_as_its_tree(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    image = tmp_path / "template.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image), "8M"], check=True)
    args = {"files": ["/etc/ssh/*", "/etc/issue"]}
    from_image = ho.fingerprint_image(str(image), dict(args, disk_digest=True))
    assert from_image["error"] is None, from_image["error"]
    from_tree = ho.HostObserver().observe("fingerprint", dict(args, root=str(root)))
    assert from_image["value"]["guest"]["packages"] == from_tree["value"]["guest"]["packages"]
    assert from_image["value"]["guest"]["files"] == from_tree["value"]["guest"]["files"]
    assert from_image["value"]["generalised"]["machine_id_empty"] is True
    assert from_image["value"]["disk_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert "<image>" in from_image["raw"] and str(tmp_path / "vqual-image") not in from_image["raw"]
    missing = ho.fingerprint_image(str(tmp_path / "none.img"), {})
    assert "is not a file" in missing["error"]


def _facts(name: str, mac: str, vcpus: int = 1, fmt: str = "qcow2") -> dict[str, Any]:
    return {
        "name": name, "uuid": f"uuid-{name}", "vcpus": vcpus, "memory_mib": 384,
        "firmware": "bios", "secure_boot": False, "machine": "pc-i440fx-7.2", "arch": "x86_64",
        "disks": [{"target": "vda", "device": "disk", "bus": "virtio", "driver_format": fmt,
                   "source": f"/x/{name}.qcow2", "readonly": False}],
        "nics": [{"mac": mac, "network": "default", "model": "virtio", "kind": "network"}],
        "devices": ["rng", "channel"],
    }


def test_vm_part_keeps_hardware_and_moves_identity_out() -> None:
    vm, identity = vm_part(_facts("clone1", "52:54:00:00:00:01"))
    assert identity == {"name": "clone1", "uuid": "uuid-clone1", "macs": ["52:54:00:00:00:01"]}
    assert vm["disks"] == [{"target": "vda", "device": "disk", "bus": "virtio", "format": "qcow2",
                            "capacity": None, "readonly": False}]
    assert vm["nics"] == [{"model": "virtio", "network": "default", "kind": "network"}]
    assert vm["devices"] == ["channel", "rng"]


def _tests() -> list[dict[str, Any]]:
    return [
        {"test_id": "FP-G", "check": "host_fingerprint", "params": {"kind": "vm"}},
        {"test_id": "FP-V", "check": "vm_fingerprint", "params": {}},
        {"test_id": "FP-T", "check": "template_fingerprint", "params": {}},
        {"test_id": "OS", "check": "os_release", "params": {"field": "ID"}},
    ]


def _keys() -> dict[str, str]:
    return {
        t["test_id"]: checks.get_check(t["check"]).request(t["params"]).key() for t in _tests()
    }


def test_target_fingerprint_merges_platform_guest_and_template(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    guest_obs = ho.HostObserver().observe("fingerprint", {"root": str(root), "files": []})
    template = dict(guest_obs["value"], disk_sha256="d" * 64)
    template["generalised"] = {"machine_id_empty": True, "ssh_host_keys": []}
    booted = dict(guest_obs["value"])
    booted["generalised"] = {"machine_id_empty": False, "ssh_host_keys": ["ssh_host_ed25519_key"]}
    keys = _keys()
    observations = {
        keys["FP-G"]: {"value": booted},
        keys["FP-V"]: {"value": _facts("master", "52:54:00:00:00:09")},
        keys["FP-T"]: {"value": template},
    }
    fp = target_fingerprint("master", _tests(), observations, keys)
    assert isinstance(fp, Fingerprint)
    assert fp.kind == "vm" and fp.vm is not None and fp.vm["vcpus"] == 1
    assert fp.guest is not None and fp.guest["packages"]["procps"] == "2:4.0.2-3"
    assert fp.identity["name"] == "master" and fp.identity["hostname"] == "vqual-template"
    # Template facts and the disk digest are the image's, not the booted guest's.
    assert fp.generalised == {"machine_id_empty": True, "ssh_host_keys": []}
    assert fp.digests["disk"] == "d" * 64
    # No usable observation: no fingerprint.
    errors = {k: {"error": "unreachable"} for k in keys.values()}
    assert target_fingerprint("master", _tests(), errors, keys) is None
    assert target_fingerprint("master", _tests()[3:], observations, keys) is None


def test_a_clone_differs_from_its_master_only_by_identity(tmp_path: Path) -> None:
    root = make_root(tmp_path / "guest")
    value = ho.HostObserver().observe("fingerprint", {"root": str(root), "files": []})["value"]
    keys = _keys()
    tests = _tests()[:2]

    def fp(name: str, mac: str, vcpus: int = 1) -> Fingerprint:
        obs = {keys["FP-G"]: {"value": dict(value, identity={"hostname": name})},
               keys["FP-V"]: {"value": _facts(name, mac, vcpus)}}
        found = target_fingerprint(name, tests, obs, keys)
        assert found is not None
        return found

    master = fp("master", "52:54:00:00:00:09")
    assert compare(master, fp("clone1", "52:54:00:00:00:01")) == []
    assert [d.what for d in compare(master, fp("clone1", "52:54:00:00:00:01", vcpus=2))] == [
        "vm.vcpus"
    ]


def test_check_types_validate_and_read_fields() -> None:
    host = checks.get_check("host_fingerprint")
    assert host.validate_params({"files": ["etc/x"]}) is not None
    assert host.validate_params({"max_files": 0}) is not None
    assert host.validate_params({"kind": "toaster"}) is not None
    assert host.validate_params({"colour": 1}) is not None
    assert host.validate_params({"files": ["/etc/*"], "kind": "vm", "field": "x"}) is None
    # field is not a probe argument: tests reading different fields share one observation.
    assert host.request({"field": "a"}).key() == host.request({"field": "b"}).key()
    value = {"guest": {"packages": {"a.b": "1", "c": "2"}}, "generalised": {}, "identity": {}}
    assert host.extract(value, {"field": "guest.packages.a.b"}) == "1"
    assert host.extract(value, {"field": "summary.packages"}) == 2
    assert host.extract(value, {"field": "guest.nope"}) is None
    vm = checks.get_check("vm_fingerprint")
    assert vm.validate_params({"platform": "hyperv"}) is not None
    assert vm.request({"platform": "vsphere", "vm": "x"}).method == "vm"
    facts = dict(_facts("m", "52:54:00:00:00:01"), devices=["hostdev", "rng"])
    assert vm.extract(facts, {"field": "summary.passthrough"}) == ["hostdev"]
    outcome = checks.evaluate(vm, Observation(value=facts), {"field": "summary.passthrough"},
                              {"op": "absent"})
    assert outcome.verdict == "fail"


def test_vm_and_image_names_come_from_the_inventory() -> None:
    requests = [{"key": "k", "method": "domain", "args": {}},
                {"key": "k2", "method": "domain", "args": {"name": "given"}},
                {"key": "k3", "method": "nodeinfo", "args": {}}]
    filled = fill_vm_names(requests, "libvirt", {"vqual_libvirt_domain": "master"}, "inv-name")
    assert [r["args"] for r in filled] == [{"name": "master"}, {"name": "given"}, {}]
    assert fill_vm_names(requests[:1], "libvirt", {}, "inv-name")[0]["args"] == {"name": "inv-name"}
    assert fill_vm_names(requests[:1], "vsphere", {"vqual_vsphere_vm": "vm1"}, "x")[0]["args"] == {}
    images = fill_template_images([{"key": "t", "args": {}}], {"vqual_template_image": "/i.img"})
    assert images[0]["args"] == {"image": "/i.img"}
