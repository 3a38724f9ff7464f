"""`vqual cleanup RUN_ID` on the lab: a run killed midway leaves a tagged, running guest and
its overlay behind; cleanup removes both. Untagged guests and other runs' guests stay."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qualification.platforms.libvirt import guest_oq as g
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.timeutil import new_run_id
from tests.conftest import COLLECTION, REPO, VENV_BIN, run_vqual, vqual_env
from tests.integration.test_kvm_cluster import (
    KVM2_URI,
    LAB_INV,
    lab_throwaways,
    wait_for_guest_slot,
)

pytestmark = pytest.mark.lab

KVM1_URI = "qemu+tcp://127.0.0.11/system"

_RUN = """
import sys
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_migrate import run_migration_heartbeat
with LibvirtPlatform(sys.argv[1]) as p:
    run_migration_heartbeat(p, sys.argv[2], template="master", run_id=sys.argv[3], unsafe=True)
"""


def _outside(path: str) -> Path:
    """A path on the KVM hosts' shared storage as this machine sees it."""
    from vqual_lab import kvm, manager

    return manager.context().lab_dir / "shared" / path.removeprefix(kvm.SHARED_MOUNT + "/")


def test_cleanup_removes_the_guest_of_a_killed_run(executor_state: Path, lab: object) -> None:
    wait_for_guest_slot()
    run_id = new_run_id()
    name = g.throwaway_name(run_id, "mig")
    proc = subprocess.Popen([sys.executable, "-c", _RUN, KVM1_URI, KVM2_URI, run_id],
                            cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:  # kill the run once its throwaway guest runs: midway, before migration
            with LibvirtPlatform(KVM1_URI, readonly=True) as kvm1:
                if kvm1.vm_exists(name) and kvm1.vm(name).power_state == "running":
                    xml = kvm1.vm_xml(name, inactive=True)
                    break
            assert proc.poll() is None, "the run ended before its guest ran"
            assert time.monotonic() < deadline, "the throwaway guest did not start"
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    tag = g.tag_of(xml)
    assert tag is not None and tag.run_id == run_id
    overlay = _outside(tag.files[0])
    assert overlay.exists()
    assert lab_throwaways().get(name) == "kvm1"  # left behind by the killed run

    done = run_vqual("cleanup", run_id, "-i", str(LAB_INV), "--json", state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["removed"] == [name]
    assert name not in lab_throwaways()
    assert not overlay.exists()
    # A second cleanup finds nothing: idempotent.
    again = run_vqual("cleanup", run_id, "-i", str(LAB_INV), "--json", state_dir=executor_state)
    assert again.returncode == 0 and json.loads(again.stdout)["removed"] == []


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (ansible-runner starts its own sessions)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def test_cleanup_after_a_killed_vqual_qualify(executor_state: Path, tmp_path: Path,
                                              lab: object) -> None:
    wait_for_guest_slot()
    inv = tmp_path / "inventory"
    shutil.copytree(LAB_INV, inv)
    (inv / "host_vars").mkdir(exist_ok=True)
    (inv / "host_vars" / "kvm1.yml").write_text(yaml.safe_dump({
        "vqual_libvirt_oq": {"template": "master", "destination": KVM2_URI,
                             "unsafe_migration": True}}))
    run_id = new_run_id()
    name = g.throwaway_name(run_id, "bak")
    proc = subprocess.Popen(
        [str(VENV_BIN / "vqual"), "qualify", "-i", str(inv), "-s",
         str(COLLECTION / "specs" / "kvm-cluster.yaml"), "-c", "CHG0000503", "--run-id", run_id,
         "--limit", "kvm1", "--test", "OQ-KVM-003", "--evidence-dir", str(tmp_path / "ev")],
        cwd=REPO, env=vqual_env(executor_state), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            with LibvirtPlatform(KVM1_URI, readonly=True) as kvm1:
                if kvm1.vm_exists(name) and kvm1.vm(name).power_state == "running":
                    break
            assert proc.poll() is None, "vqual qualify ended before its guest ran"
            assert time.monotonic() < deadline, "the throwaway guest did not start"
            time.sleep(0.5)
    finally:
        for pid in reversed(_descendants(proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    time.sleep(1)
    assert name in lab_throwaways()  # the killed run could not clean up after itself

    done = run_vqual("cleanup", run_id, "-i", str(inv), "--json", state_dir=executor_state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert name in json.loads(done.stdout)["removed"]
    assert not [n for n in lab_throwaways() if run_id in n]


def test_cleanup_removes_only_its_run_and_only_tagged_guests(executor_state: Path,
                                                            lab: object) -> None:
    run_id, other_run = new_run_id(), new_run_id()
    ours = g.throwaway_name(run_id, "left")
    theirs = g.throwaway_name(other_run, "left")
    untagged = g.throwaway_name(run_id, "untagged")
    with LibvirtPlatform(KVM2_URI) as kvm2:
        template = "<domain type='qemu'><name>x</name><memory unit='MiB'>32</memory>" \
                   "<os><type arch='x86_64'>hvm</type></os><devices><disk type='file' " \
                   "device='disk'><driver name='qemu' type='raw'/><source file='/nonexistent'/>" \
                   "<target dev='vda' bus='virtio'/></disk></devices></domain>"
        for name, run in ((ours, run_id), (theirs, other_run)):
            tag = g.ThrowawayTag(run, "left", "t", (f"/srv/vqual-shared/{name}.qcow2",))
            kvm2.conn.defineXML(g.throwaway_xml(template, name, tag.files[0], tag))
        kvm2.conn.defineXML(template.replace("<name>x</name>", f"<name>{untagged}</name>"))
    try:
        done = run_vqual("cleanup", run_id, "-i", str(LAB_INV), "--json",
                         state_dir=executor_state)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["removed"] == [ours]
        left = lab_throwaways()
        assert ours not in left
        assert left.get(theirs) == "kvm2" and left.get(untagged) == "kvm2"
    finally:
        with LibvirtPlatform(KVM2_URI) as kvm2:
            for name in (ours, theirs, untagged):
                if kvm2.vm_exists(name):
                    kvm2.delete_vm(name)
