"""A P2V of a lab KVM host, qualified by difference (`vqual convert`, docs/conversion.md "Shown
on the lab: a P2V"; VQ-84), and the data case.

kvm1 (the "physical" machine: a root filesystem of its own, run under its own init
``vqual-init``) gets application data under /srv/app and its baseline is taken with the
shipped spec ``p2v.yaml``. Its running root is copied and made into a raw ext4
image by ``virt-make-fs`` (libguestfs, TCG appliance), with a boot adapter added
(lab/vqual_lab/p2v.py); the image boots on kvm2 as ``vqual-tmp-p2v`` with the lab's
direct-kernel-boot kernel and initrd, to the host's own init and services, and is observed
over SSH (the host's own sshd). The VM passes: the kernel shows as an allowed difference,
addresses and MACs as declared identity. Then one data file is changed, one removed and one
added in the VM: the conversion fails, naming each.

Marked ``slow``: virt-make-fs (about 70 s here), a TCG boot and three playbook runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.conversion_testlib import records, ssh

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPEC = COLLECTION / "specs" / "p2v.yaml"
LAB_INV = REPO / "inventories" / "lab"
SOURCE, TARGET = "kvm1", "vqual-tmp-p2v"
SOURCE_ADDR = "127.0.0.11"
TARGET_ADDR, TARGET_PORT = "127.0.0.68", 2268
CHANGE = "CHG0007501"


def _boot(ctx: Any, files: Path, image: Path) -> float:
    """Define the P2V VM on kvm2 from the lab guest definition and boot it; seconds to ready."""
    import time

    import libvirt
    from vqual_lab import guests, p2v

    spec = guests.GuestSpec(TARGET, "clone", "kvm2", TARGET_ADDR, TARGET_PORT, False)
    where = guests.GuestFiles(files, f"{guests._kvm().SHARED_MOUNT}/guests/{files.name}")
    key = guests._kvm().Paths.of(ctx).ssh_key.with_suffix(".pub").read_text().strip()
    conn = libvirt.open(guests.lab_hosts()["kvm2"])
    try:
        conn.defineXML(p2v.domain_xml(guests.domain_xml(spec, where, key), TARGET,
                                      where.inside(image.name)))
    finally:
        conn.close()
    log = files / f"{TARGET}.serial.log"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    guests.start_guest(ctx.lab_dir, TARGET, "kvm2")
    guests.wait_ready(log, timeout=400, alive=lambda: TARGET in guests.running_guests())
    return time.monotonic() - started


@pytest.fixture(scope="module")
def p2v(lab: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """kvm1's baseline, then its P2V running on kvm2; afterwards the VM, its image and the
    data on kvm1 are removed."""
    from vqual_lab import guests, manager
    from vqual_lab import p2v as p2v_tool

    root = tmp_path_factory.mktemp("p2v-lab")
    state = root / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    ctx = manager.context()
    kvm = yaml.safe_load((LAB_INV / "hosts.yml").read_text())["all"]["children"]["kvm_hosts"]
    source = {**kvm["vars"], **kvm["hosts"][SOURCE], "vqual_app_data": ["/srv/app"]}
    target = {k: v for k, v in source.items() if k != "vqual_libvirt_uri"}
    target.update(ansible_host=TARGET_ADDR, ansible_port=TARGET_PORT)
    inventory = root / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {SOURCE: source, TARGET: target}}}))
    files = Path(ctx.state()["guests"]["files"])
    image = files / f"{TARGET}.img"
    try:
        ssh(SOURCE_ADDR, 22, "mkdir -p /srv/app/db && printf 'lot 1\\nlot 2\\n' > "
            "/srv/app/db/batches.dat && printf 'rack A\\n' > /srv/app/db/sites.dat && "
            "printf 'mode = gmp\\n' > /srv/app/app.conf && sync")
        evidence = root / "evidence"
        done = run_vqual("convert", "baseline", "-i", str(inventory), "--limit", SOURCE,
                         "-s", str(SPEC), "-c", CHANGE, "--evidence-dir", str(evidence),
                         "--json", state_dir=state)
        assert done.returncode == 0, done.stdout + done.stderr
        init_pid = ctx.state()["kvm"]["hosts"][SOURCE]["init_pid"]
        made = p2v_tool.make_image(Path(f"/proc/{init_pid}/root"), image)
        boot = _boot(ctx, files, image)
        print(f"p2v: tar {made.copy_seconds:.1f} s ({made.tar_bytes >> 20} MiB), virt-make-fs "
              f"{made.make_fs_seconds:.1f} s, boot to ready {boot:.1f} s")
        yield {"state": state, "inventory": inventory, "evidence": evidence,
               "baseline": Path(json.loads(done.stdout)["bundle"])}
    finally:
        guests.remove_guest(ctx, TARGET, "kvm2")
        image.unlink(missing_ok=True)
        ssh(SOURCE_ADDR, 22, "rm -rf /srv/app")


def convert_qualify(site: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("convert", "qualify", "--baseline", str(site["baseline"]),
                     "-i", str(site["inventory"]), "--limit", TARGET, "-c", CHANGE,
                     "--evidence-dir", str(site["evidence"]), "--json", state_dir=site["state"])
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stdout + done.stderr


def test_the_vm_runs_the_hosts_own_init_and_services(p2v: dict[str, Any]) -> None:
    seen = ssh(TARGET_ADDR, TARGET_PORT,
               "hostname; cat /sys/class/dmi/id/sys_vendor; cat /proc/1/comm; "
               "cat /proc/$(pgrep -o -f /usr/local/sbin/vqual-init)/comm; "
               "pgrep -x libvirtd >/dev/null && echo libvirtd; "
               "ss -Hltn | grep -c '127.0.0.11:22 '").split()
    assert seen == ["kvm1", "QEMU", "busybox", "vqual-init", "libvirtd", "1"], seen


def test_p2v_passes_with_the_kernel_as_allowed_difference(p2v: dict[str, Any]) -> None:
    code, out, err = convert_qualify(p2v)
    assert code == 0, err
    assert out["differences"] == []
    assert {(d["what"], d["where"]) for d in out["allowed"]} == {
        ("kernel", "release"), ("kernel", "version")}
    start = records(Path(out["bundle"]))[0]["data"]
    assert start["mode"] == "conversion"
    assert start["conversion"]["source"]["subject"] == SOURCE
    assert run_vqual("verify", out["bundle"], state_dir=p2v["state"]).returncode == 0


def test_p2v_with_changed_removed_and_added_data_fails_naming_each(
    p2v: dict[str, Any]
) -> None:
    ssh(TARGET_ADDR, TARGET_PORT,
        "printf 'lot 1\\nlot 2 lost\\n' > /srv/app/db/batches.dat && "
        "rm /srv/app/db/sites.dat && printf 'x\\n' > /srv/app/db/stray.dat && sync")
    code, out, err = convert_qualify(p2v)
    assert code == 1, err
    assert [(d["what"], d["where"]) for d in out["differences"]] == [
        ("data", "/srv/app/db/batches.dat"),
        ("data", "/srv/app/db/sites.dat"),
        ("data", "/srv/app/db/stray.dat"),
    ]
    assert [d["reason"].rsplit("(", 1)[1].split(")")[0] for d in out["differences"]] == [
        "changed", "removed", "added"]
