"""`vqual drift` end to end: real Ansible, real evidence, real targets.

Without the lab: this machine (local connection) and libvirt's test driver stand in for a
guest and its platform; a directory made by the test holds the "key files". With the lab: a
clone's baseline, then a changed package, an extra user and a changed file on clone1, found by
name; the hostname (an identity field) is not reported. The changes are undone afterwards.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, run_vqual

LAB_INV = REPO / "inventories" / "lab"


def records(bundle: Path) -> list[dict[str, Any]]:
    out = []
    for line in (bundle / "records.jsonl").read_text().splitlines():
        out.append(json.loads(base64.b64decode(json.loads(line)["payload"])))
    return out


def seal_of(bundle: Path) -> str:
    import hashlib

    for line in (bundle / "records.jsonl").read_bytes().splitlines():
        record = json.loads(base64.b64decode(json.loads(line)["payload"]))
        if record["kind"] == "run.end":
            return hashlib.sha256(line).hexdigest()
    raise AssertionError(f"{bundle} has no run.end")


def fp_spec(path: Path, kinds: list[str], files: list[str], *, services: list[str] = ()) -> Path:
    """A small protocol: the guest fingerprint and the VM fingerprint."""
    params: dict[str, Any] = {"kind": "vm", "files": files, "field": "summary.packages"}
    if services:
        params["services"] = list(services)
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "fp-test", "title": "Fingerprint for tests", "version": "1.0"},
        "requirements": ["URS-MVM-01", "URS-MVM-03"],
        "tests": [
            {"id": "IQ-FP-001", "title": "Guest fingerprint", "protocol": "IQ",
             "requirements": ["URS-MVM-03"], "applies_to": kinds,
             "risk": ["high", "medium", "low"], "check": "host_fingerprint", "params": params,
             "expect": {"op": "range", "min": 1}, "acceptance": "packages observed"},
            {"id": "IQ-FP-002", "title": "VM fingerprint", "protocol": "IQ",
             "requirements": ["URS-MVM-01"], "applies_to": kinds,
             "risk": ["high", "medium", "low"], "check": "vm_fingerprint",
             "params": {"field": "vm.vcpus"}, "expect": {"op": "range", "min": 1},
             "acceptance": "vCPUs observed"},
        ],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def bundle_of(stdout: str) -> Path:
    for line in stdout.splitlines():
        if line.strip().startswith("evidence:"):
            return Path(line.split(":", 1)[1].strip().split(" ")[0])
    raise AssertionError(f"no evidence line in {stdout!r}")


def drift(state: Path, baseline: Path, inventory: Path, evidence: Path, change: str,
          *args: str) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("drift", "--baseline", str(baseline), "-i", str(inventory), "-c", change,
                     "--evidence-dir", str(evidence), "--json", *args, state_dir=state)
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stderr


# --------------------------------------------------------------------------- without the lab


@pytest.fixture()
def local_guest(tmp_path: Path) -> tuple[Path, Path]:
    tree = tmp_path / "tree" / "etc"
    tree.mkdir(parents=True)
    (tree / "a.conf").write_text("a\n")
    (tree / "b.conf").write_text("b\n")
    inventory = tmp_path / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"fp-local": {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "vqual_target_kinds": ["master_vm"],
        "vqual_libvirt_uri": "test:///default",
        "vqual_libvirt_domain": "test",
    }}}}))
    return tree, inventory


def test_drift_names_changed_and_added_files_and_records_them(
    executor_state: Path, tmp_path: Path, local_guest: tuple[Path, Path]
) -> None:
    tree, inventory = local_guest
    spec = fp_spec(tmp_path / "spec.yaml", ["master_vm"], [f"{tree}/**"])
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000101",
                     "--evidence-dir", str(evidence), state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    baseline = bundle_of(done.stdout)
    fps = [r for r in records(baseline) if r["kind"] == "fingerprint"]
    assert len(fps) == 1 and fps[0]["data"]["subject"] == "fp-local"
    assert fps[0]["data"]["vm"]["vcpus"] >= 1 and f"{tree}/a.conf" in fps[0]["data"]["guest"]["files"]

    # Nothing changed: no drift, exit 0, and the drift run's bundle verifies.
    code, payload, err = drift(executor_state, baseline, inventory, evidence, "CHG0000102")
    assert code == 0, err
    assert payload["drift"] is False and payload["differences"] == []
    assert payload["verification"] == "valid"
    start = records(Path(payload["bundle"]))[0]["data"]
    assert start["mode"] == "drift"
    assert payload["baseline"]["seal"] == seal_of(baseline)

    (tree / "b.conf").write_text("changed\n")
    (tree / "c.conf").write_text("new\n")
    code, payload, err = drift(executor_state, baseline, inventory, evidence, "CHG0000102")
    assert code == 1, err
    assert [(d["target"], d["what"], d["where"]) for d in payload["differences"]] == [
        ("fp-local", "file", f"{tree}/b.conf"),
        ("fp-local", "file", f"{tree}/c.conf"),
    ]
    assert payload["differences"][1]["baseline"] is None
    results = [r["data"] for r in records(Path(payload["bundle"])) if r["kind"] == "check.result"]
    failed = sorted(r["test_id"] for r in results if r["verdict"] == "fail")
    assert failed == ["IQ-FP-001", f"IQ-FP-001:file:{tree}/b.conf", f"IQ-FP-001:file:{tree}/c.conf"]
    verify = run_vqual("verify", payload["bundle"], state_dir=executor_state)
    assert verify.returncode == 0, verify.stdout  # failed results, in a valid bundle


def test_drift_refuses_a_baseline_that_does_not_verify(
    executor_state: Path, tmp_path: Path, local_guest: tuple[Path, Path]
) -> None:
    tree, inventory = local_guest
    spec = fp_spec(tmp_path / "spec.yaml", ["master_vm"], [f"{tree}/**"])
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000103",
                     "--evidence-dir", str(evidence), state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    baseline = bundle_of(done.stdout)
    spec_copy = baseline / "spec.yaml"
    spec_copy.write_bytes(spec_copy.read_bytes() + b"# edited\n")
    code, payload, err = drift(executor_state, baseline, inventory, evidence, "CHG0000104")
    assert code == 1 and payload == {}
    assert "baseline refused" in err and "spec.yaml" in err
    assert not (evidence / "CHG0000104").exists()  # nothing ran

    code, _, err = drift(executor_state, tmp_path / "nowhere", inventory, evidence, "CHG0000104")
    assert code == 1 and "not an evidence bundle" in err


def test_drift_bad_input_is_exit_2(executor_state: Path, tmp_path: Path,
                                   local_guest: tuple[Path, Path]) -> None:
    tree, inventory = local_guest
    spec = fp_spec(tmp_path / "spec.yaml", ["master_vm"], [f"{tree}/**"])
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000105",
                     "--evidence-dir", str(evidence), state_dir=executor_state)
    baseline = bundle_of(done.stdout)
    code, _, err = drift(executor_state, baseline, inventory, evidence, "not a change")
    assert code == 2, err
    bad = tmp_path / "allowed.yaml"
    bad.write_text("sizing: {vcpus: {min: 4, max: 2}}\n")
    code, _, err = drift(executor_state, baseline, inventory, evidence, "CHG0000106",
                         "--allowed", str(bad))
    assert code == 2 and "min 4 > max 2" in err


def test_drift_reruns_the_checks_of_a_baseline_without_fingerprint(
    executor_state: Path, tmp_path: Path, local_guest: tuple[Path, Path]
) -> None:
    tree, inventory = local_guest
    checked = tree / "a.conf"
    spec = tmp_path / "checks.yaml"
    spec.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "checks-only", "title": "No fingerprint", "version": "1.0"},
        "requirements": ["URS-CHG-02"],
        "tests": [{"id": "IQ-CK-001", "title": "Key file mode", "protocol": "IQ",
                   "requirements": ["URS-CHG-02"], "applies_to": ["master_vm"],
                   "risk": ["high", "medium", "low"], "check": "file_mode",
                   "params": {"path": str(checked)}, "expect": {"op": "equals", "value": "0644"},
                   "acceptance": "mode 0644"}],
    }))
    checked.chmod(0o644)
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(inventory), "-s", str(spec), "-c", "CHG0000107",
                     "--evidence-dir", str(evidence), state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    baseline = bundle_of(done.stdout)
    assert not [r for r in records(baseline) if r["kind"] == "fingerprint"]
    checked.chmod(0o600)
    code, payload, err = drift(executor_state, baseline, inventory, evidence, "CHG0000108")
    assert code == 1, err
    assert [(d["target"], d["what"], d["where"]) for d in payload["differences"]] == [
        ("fp-local", "check", "IQ-CK-001")
    ]
    assert "0600" in payload["differences"][0]["reason"]


# --------------------------------------------------------------------------- on the lab

#: What clone1 gets changed by, and what drift must name: nothing else.
MARKER_PACKAGE = "vqual-drift-marker"
EXTRA_USER = "vqualdrift"
CHANGED_FILE = "/etc/issue"
KEY_FILES = ["/etc/ssh/sshd_config", "/etc/issue", "/etc/fstab", "/etc/apt/sources.list.d/*"]


def marker_deb(tmp_path: Path) -> bytes:
    root = tmp_path / "deb"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {MARKER_PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: vqual tests <tests@example.invalid>\n"
        "Description: marks a guest changed for drift tests\n"
    )
    (root / "usr" / "share" / "doc" / MARKER_PACKAGE).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / MARKER_PACKAGE / "README").write_text("drift test\n")
    out = tmp_path / "marker.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return out.read_bytes()


def clone(name: str) -> Any:
    from vqual_lab.guests import VM_BUDGET

    return next(g for g in VM_BUDGET.guests if g.name == name)


def on_guest(name: str, command: str) -> str:
    from vqual_lab import guests, manager

    spec = clone(name)
    return guests.ssh_run(manager.context().lab_dir, spec.ssh_address, spec.ssh_port, command,
                          timeout=120)


@pytest.fixture()
def changed_clone1(tmp_path: Path) -> Iterator[None]:
    """clone1 with one more package, one more user and a changed key file; undone after."""
    deb = base64.b64encode(marker_deb(tmp_path)).decode()
    on_guest("clone1", f"cp -p {CHANGED_FILE} /root/.vqual-issue.bak")
    try:
        on_guest("clone1", (
            f"echo {deb} | base64 -d > /tmp/marker.deb && dpkg -i /tmp/marker.deb >/dev/null"
            f" && rm /tmp/marker.deb"
            f" && echo '{EXTRA_USER}:x:1500:100::/nonexistent:/usr/sbin/nologin' >> /etc/passwd"
            f" && echo 'changed by a drift test' >> {CHANGED_FILE}"
        ))
        yield
    finally:
        on_guest("clone1", (
            f"dpkg -P {MARKER_PACKAGE} >/dev/null 2>&1; sed -i '/^{EXTRA_USER}:/d' /etc/passwd;"
            f" cp -p /root/.vqual-issue.bak {CHANGED_FILE} && rm /root/.vqual-issue.bak"
        ))


def expected_differences(target: str) -> list[tuple[str, str, str]]:
    return sorted([
        (target, "file", CHANGED_FILE),
        (target, "package", MARKER_PACKAGE),
        (target, "user", EXTRA_USER),
    ])


@pytest.mark.lab
@pytest.mark.slow  # CI runs the same changes against the master's bundle (test_master_vm.py)
def test_lab_drift_of_clone1_from_clone2s_baseline_names_exactly_the_changes(
    executor_state: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spec = fp_spec(tmp_path / "spec.yaml", ["clone"], KEY_FILES, services=["sshd", "qemu-ga"])
    evidence = tmp_path / "evidence"
    done = run_vqual("qualify", "-i", str(LAB_INV), "-s", str(spec), "-c", "CHG0000201",
                     "--limit", "clone2", "--evidence-dir", str(evidence),
                     state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    baseline = bundle_of(done.stdout)
    # Unchanged clone1 against clone2's baseline: the same type, only identity differs.
    code, payload, err = drift(executor_state, baseline, LAB_INV, evidence, "CHG0000202",
                               "--limit", "clone1")
    assert code == 0, (err, payload.get("differences"))
    request.getfixturevalue("changed_clone1")
    code, payload, err = drift(executor_state, baseline, LAB_INV, evidence, "CHG0000202",
                               "--limit", "clone1")
    assert code == 1, err
    found = sorted((d["target"], d["what"], d["where"]) for d in payload["differences"])
    assert found == expected_differences("clone1")
    assert not any(d["what"].startswith("identity") for d in payload["differences"])
    assert payload["verification"] == "valid"


@pytest.mark.lab
def test_lab_vsphere_vm_fingerprint_of_two_simulated_vms(tmp_path: Path) -> None:
    """The VM part from vSphere (the lab's vCenter simulator): two VMs of the same type differ
    only by identity; a size outside the allowed range is named with the range."""
    from qualification import checks
    from qualification.baseline import AllowedDifferences, SizeRange, compare
    from qualification.checks.fingerprint import target_fingerprint
    from qualification.execution.probes import run_controller_probe
    from vqual_lab import manager, vcsim

    inst = vcsim.DEFAULT_VCENTER
    user, password = vcsim.read_credentials(manager.context(), inst)
    host_vars = {
        "vqual_vsphere_host": inst.address, "vqual_vsphere_port": inst.port,
        "vqual_vsphere_validate_certs": False, "vqual_vsphere_username": user,
        "vqual_vsphere_password": password, "vqual_vsphere_datacenter": "DC0",
        "vqual_vsphere_cluster": "DC0_C0",
    }
    check = checks.get_check("vm_fingerprint")
    prints = {}
    for vm in ("DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"):
        request = check.request({"platform": "vsphere", "vm": vm})
        found = run_controller_probe("vsphere", [request.to_json()], host_vars=host_vars,
                                     run_id="", check_mode=True)
        test = {"test_id": "IQ-FP-002", "check": "vm_fingerprint",
                "params": {"platform": "vsphere", "vm": vm}}
        fp = target_fingerprint(vm, [test], found, {"IQ-FP-002": request.key()})
        assert fp is not None, found
        assert password not in json.dumps(fp.to_json())
        prints[vm] = fp
    master, clone = prints["DC0_C0_RP0_VM0"], prints["DC0_C0_RP0_VM1"]
    assert master.vm is not None and master.vm["vcpus"] >= 1 and master.vm["disks"]
    assert master.identity["uuid"] != clone.identity["uuid"]
    assert compare(master, clone) == []
    vcpus = int(master.vm["vcpus"])
    tight = AllowedDifferences(sizing={"vcpus": SizeRange(vcpus + 1, vcpus + 2)})
    found = compare(master, clone, tight)
    assert [(d.what, d.detail) for d in found] == [
        ("vm.vcpus", f"outside the allowed range [{vcpus + 1}, {vcpus + 2}]")
    ]
