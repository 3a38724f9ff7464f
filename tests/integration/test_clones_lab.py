"""`vqual clone` on the lab's guests: clone1 and clone2 against a qualified, approved master.

The master is qualified as a type first (specs/master-vm.yaml): the clones are taken down
(the master must not run while overlays use its disk), the master boots, is qualified, and
stops; then the guests component recreates the clones as fresh overlays of the unchanged
template (docs/lab-guests.md). An approver signs the master bundle. Then:

- both clones are qualified with the reduced set (the spec's clone-scope tests only); both
  bundles verify and cite the master's seal; the hostname, machine id and SSH host keys
  differ and are not reported;
- clone1 with an extra package (a .deb built here and installed with dpkg), an extra user
  and a changed /etc/issue fails, naming exactly those three; the changes are undone;
- ``--create 1`` defines a qcow2 overlay clone of the stopped master on kvm1 and qualifies
  it with the tests observed through the platform; it is removed afterwards.

Takes several minutes of TCG boots: marked ``slow``. Run under the lab lock:
``VQUAL_LAB=1 VQUAL_LAB_KEEP=1 flock /tmp/vqual-lab.lock .venv/bin/pytest -m slow
tests/integration/test_clones_lab.py``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.integration.reviewflow import add_person, executor, vqual_with_passphrase

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPEC = COLLECTION / "specs" / "master-vm.yaml"
LAB_INV = REPO / "inventories" / "lab"
EXTRA_PKG = "vqual-clone-probe"


def records(bundle: Path) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in (bundle / "records.jsonl").read_text().splitlines()
    ]


def ssh(name: str, command: str) -> str:
    from vqual_lab import guests, manager

    ctx = manager.context()
    spec = guests.VM_BUDGET.spec(name)
    assert spec is not None
    return guests.ssh_run(ctx.lab_dir, spec.ssh_address, spec.ssh_port, command, timeout=120)


def tiny_deb(folder: Path) -> bytes:
    """A real, minimal Debian package (no files, no dependencies), built with dpkg-deb."""
    root = folder / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {EXTRA_PKG}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: vqual tests <tests@example.invalid>\n"
        "Description: a package a clone should not have\n"
    )
    out = folder / f"{EXTRA_PKG}.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A state with an executor and an approver, and an approved master bundle."""
    from vqual_lab import guests, manager

    root = tmp_path_factory.mktemp("clones-lab")
    state = root / "state"
    state.mkdir()
    executor(state)
    approver = add_person(state, "Ada Approver", "ada@example.com", "approver")
    ctx = manager.context()
    image = guests.build_master_image(ctx.lab_dir)
    # The lab inventory, plus the template image the master spec reads offline: the cached,
    # generalised image the published master disk is a copy of (the master's own disk is
    # written by its first boot during this qualification).
    inv = root / "inventory"
    shutil.copytree(LAB_INV, inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    master_vars = hosts["all"]["children"]["master_vm"]["hosts"]["master"]
    master_vars["vqual_template_image"] = str(image.image)
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))

    component = guests.Guests()
    for name, host in (("clone1", "kvm1"), ("clone2", "kvm2")):
        guests.remove_guest(ctx, name, host)
    try:
        record = ctx.state()["guests"]["guests"]["master"]
        log = Path(record["serial_log"])
        offset = log.stat().st_size if log.exists() else 0
        guests.start_guest(ctx.lab_dir, "master", "kvm1")
        guests.wait_ready(log, offset=offset, timeout=400,
                          alive=lambda: "master" in guests.running_guests())
        done = run_vqual(
            "qualify", "-i", str(inv), "-s", str(SPEC), "-c", "CHG0006001", "--limit", "master",
            "--evidence-dir", str(root / "evidence"), "--json", state_dir=state,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        master = Path(json.loads(done.stdout)["bundle"])
    finally:
        # Leave the lab as it was: the master stopped, the template unchanged, fresh clones.
        component.down(ctx)
        status = component.up(ctx)
        assert status.state == "running", status
    signed = vqual_with_passphrase("sign", str(master), "--meaning", "approved",
                                   "--key", str(approver), state_dir=state)
    assert signed.returncode == 0, signed.stderr
    yield {"root": root, "state": state, "inventory": inv, "master": master}


def clone_run(site: dict[str, Path], change: str, clones: str) -> dict[str, Any]:
    done = run_vqual(
        "clone", "-i", str(site["inventory"]), "-s", str(SPEC), "-c", change,
        "--master-bundle", str(site["master"]), "--clones", clones,
        "--evidence-dir", str(site["root"] / "evidence"), "--json", state_dir=site["state"],
    )
    assert done.stdout.strip().startswith("{"), done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    out["returncode"] = done.returncode
    return out


def test_both_clones_pass_with_the_reduced_set_and_cite_the_master(site: dict[str, Path]) -> None:
    out = clone_run(site, "CHG0006002", "clone1,clone2")
    assert out["verification"] == "valid"
    recs = records(Path(out["bundle"]))
    start = recs[0]["data"]
    master_seal = json.loads(run_vqual("verify", str(site["master"]), "--json",
                                       state_dir=site["state"]).stdout)["seal"]
    assert start["clone"]["master_seal"] == master_seal
    assert start["clone"]["master_approval"]["name"] == "Ada Approver"
    reduced = ["IQ-MVM-CLN-001", "IQ-MVM-CLN-002", "IQ-MVM-FP-001", "IQ-MVM-FP-002"]
    assert sorted((p["target"], p["test_id"]) for p in start["planned"]) == [
        (c, t) for c in ("clone1", "clone2") for t in reduced
    ]
    fingerprints = {r["data"]["subject"]: r["data"] for r in recs if r["kind"] == "fingerprint"}
    master_fp = next(r["data"] for r in records(site["master"]) if r["kind"] == "fingerprint")
    for clone in ("clone1", "clone2"):
        # the identity differs from the master's and is not reported
        assert fingerprints[clone]["identity"]["hostname"] == clone
        assert master_fp["identity"]["hostname"] != clone
    results = [r["data"] for r in recs if r["kind"] == "check.result"]
    assert {r["verdict"] for r in results} == {"pass"}, [
        (r["target"], r["test_id"], r["observed"], r["reason"]) for r in results
        if r["verdict"] != "pass"
    ]
    assert out["returncode"] == 0


def test_a_changed_clone_is_found_naming_exactly_the_changes(
    site: dict[str, Path], tmp_path: Path
) -> None:
    deb = base64.b64encode(tiny_deb(tmp_path)).decode()
    ssh("clone1", "cp /etc/issue /root/issue.orig")
    try:
        ssh("clone1", f"echo {deb} | base64 -d > /tmp/x.deb && dpkg -i /tmp/x.deb && rm /tmp/x.deb")
        ssh("clone1", "useradd -M -N -g users -s /bin/sh eve")
        ssh("clone1", "echo 'changed on the clone' >> /etc/issue")
        out = clone_run(site, "CHG0006003", "clone1")
    finally:
        ssh("clone1", f"dpkg -r {EXTRA_PKG} >/dev/null; userdel eve; "
                      "cp /root/issue.orig /etc/issue; rm /root/issue.orig")
    assert out["returncode"] == 1, out
    assert out["verification"] == "valid"
    recs = records(Path(out["bundle"]))
    results = {r["data"]["test_id"]: r["data"] for r in recs if r["kind"] == "check.result"}
    guest = results["IQ-MVM-CLN-001"]
    assert guest["verdict"] == "fail"
    found = [(d["what"], d["where"]) for d in guest["observed"]]
    assert found == [("file", "/etc/issue"), ("package", EXTRA_PKG), ("user", "eve")]
    by = {d["what"]: d for d in guest["observed"]}
    assert by["package"]["master"] is None and by["package"]["clone"] == "1.0"
    assert by["user"]["master"] is None and by["user"]["clone"]["name"] == "eve"
    assert by["file"]["master"] != by["file"]["clone"]
    assert "hostname" not in json.dumps(guest["observed"])
    assert results["IQ-MVM-CLN-002"]["verdict"] == "pass"


def test_a_created_overlay_clone_of_the_master_passes_its_platform_tests(
    site: dict[str, Path],
) -> None:
    import libvirt

    uri = "qemu+tcp://127.0.0.11/system"
    name = "vqual-tmp-lc-1"
    try:
        done = run_vqual(
            "clone", "-i", str(site["inventory"]), "-s", str(SPEC), "-c", "CHG0006004",
            "--master-bundle", str(site["master"]), "--create", "1", "--master-host", "master",
            "--prefix", "vqual-tmp-lc", "--evidence-dir", str(site["root"] / "evidence"),
            "--json", state_dir=site["state"],
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = json.loads(done.stdout)
        assert out["master"]["created"] == [name] and out["verification"] == "valid"
        recs = records(Path(out["bundle"]))
        # stopped: only the tests observed through the platform ran
        assert sorted(p["test_id"] for p in recs[0]["data"]["planned"]) == [
            "IQ-MVM-CLN-002", "IQ-MVM-FP-002"
        ]
        conn = libvirt.open(uri)
        try:
            xml = conn.lookupByName(name).XMLDesc(0)
        finally:
            conn.close()
        assert f"{name}-vda.qcow2" in xml and "type='qcow2'" in xml
    finally:
        from qualification.platforms.libvirt.clones import remove_libvirt_clone

        remove_libvirt_clone(uri, name)
