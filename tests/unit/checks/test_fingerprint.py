"""The fingerprint check types and merging the parts of one target, on what the probe really
observes of a directory tree (the probe method itself: tests/unit/plugins/module_utils/
test_host_observations.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from qualification import checks
from qualification.checks.base import Observation
from qualification.checks.fingerprint import (
    fill_template_images,
    fill_vm_names,
    target_fingerprint,
    vm_part,
)
from qualification.checks.fingerprint_model import Fingerprint, compare
from tests.unit.plugins.module_utils.guest_root_testlib import make_root

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
