"""A platform migration on the lab (docs/conversion.md, "Migrating a platform"; VQ-85): two
guests move from kvm1 to kvm2, each baselined, converted, qualified by difference; their
sources are decommissioned; the summary run cites every VM's runs by seal and the change
verifies.

The two sources are clone1 and a throwaway guest ``vqual-tmp-msrc`` (both on kvm1; clone2
already runs on kvm2). Each gets application data under /srv/app and its baseline
(``vqual convert baseline``); it is then shut down, a cold backup of its disk goes into a
backup store with its SHA-256, and it is converted as the V2V test converts (qemu-img to a
raw image, SATA disk, e1000 NIC, a new name and forward; tests/lab/test_conversion.py) and
booted on kvm2. ``vqual convert qualify`` passes for each; ``vqual decommission`` removes both
sources (observed gone); ``vqual migrate summary`` writes the summary, and ``vqual verify``
accepts it and the whole change. The guests run one after the other within the VM budget
(three at once). The guests component recreates clone1 afterwards.

Marked ``slow``: four TCG boots and five playbook runs take several minutes (the duration is
in docs/conversion.md).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.conversion_testlib import converted_xml, records, ssh

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SPEC = COLLECTION / "specs" / "conversion.yaml"
LAB_INV = REPO / "inventories" / "lab"
CHANGE = "CHG0007401"
THROWAWAY = "vqual-tmp-msrc"
#: (source, its address and port) -> (target, its address and port)
MOVES = (
    (("clone1", "127.0.0.61", 2261), ("vqual-tmp-m1", "127.0.0.66", 2266)),
    ((THROWAWAY, "127.0.0.65", 2265), ("vqual-tmp-m2", "127.0.0.67", 2267)),
)


def _inventory(root: Path, store: Path) -> Path:
    from vqual_lab import guests

    lab_hosts = yaml.safe_load((LAB_INV / "hosts.yml").read_text())["all"]["children"]["clones"]
    common = {**lab_hosts["vars"], **lab_hosts["hosts"]["clone1"], "vqual_app_data": ["/srv/app"],
              "vqual_backup_store": str(store)}
    hosts: dict[str, Any] = {}
    for (src, src_addr, src_port), (dst, dst_addr, dst_port) in MOVES:
        hosts[src] = {**common, "ansible_host": src_addr, "ansible_port": src_port,
                      "vqual_libvirt_domain": src}
        hosts[dst] = {**common, "ansible_host": dst_addr, "ansible_port": dst_port,
                      "vqual_libvirt_uri": guests.lab_hosts()["kvm2"],
                      "vqual_libvirt_domain": dst}
    inventory = root / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    return inventory


def _move(files: Path, store: Path, source: str, target: tuple[str, str, int]) -> None:
    """Shut ``source`` down on kvm1, back its disk up into ``store``, convert it and boot the
    target on kvm2."""
    import libvirt
    from vqual_lab import guests, manager

    name, address, port = target
    uris = guests.lab_hosts()
    src_conn, dst_conn = libvirt.open(uris["kvm1"]), libvirt.open(uris["kvm2"])
    try:
        dom = src_conn.lookupByName(source)
        source_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        inside = next(d.find("source").get("file") for d in ET.fromstring(source_xml).iter("disk"))
        inner = inside.rsplit("/", 1)[0]
        dom.destroy()  # the guest synced its data; a conversion takes a stopped VM
        (store / source).mkdir(parents=True)
        backup = store / source / "cold-1.qcow2"
        subprocess.run(["qemu-img", "convert", "-q", "-O", "qcow2", str(files / f"{source}.qcow2"),
                        str(backup)], check=True, capture_output=True)
        digest = hashlib.sha256(backup.read_bytes()).hexdigest()
        (store / source / "cold-1.qcow2.sha256").write_text(f"{digest}  cold-1.qcow2\n")
        subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", str(files / f"{source}.qcow2"),
                        str(files / f"{name}.img")], check=True, capture_output=True)
        log = files / f"{name}.serial.log"
        log.unlink(missing_ok=True)
        dst_conn.defineXML(converted_xml(
            source_xml, name=name, disk=f"{inner}/{name}.img",
            serial_log=f"{inner}/{name}.serial.log", forward=(address, port)))
        guests.start_guest(manager.context().lab_dir, name, "kvm2")
        guests.wait_ready(log, timeout=400, alive=lambda: name in guests.running_guests())
    finally:
        src_conn.close()
        dst_conn.close()


@pytest.fixture(scope="module")
def site(lab: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Keys and an inventory; afterwards the targets, the throwaway source and its disks are
    removed and clone1 is recreated."""
    from vqual_lab import guests, manager

    root = tmp_path_factory.mktemp("migration-lab")
    state = root / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    from tests.conftest import pin_state

    pin_state(state)
    ctx = manager.context()
    files = Path(ctx.state()["guests"]["files"])
    store = root / "backups"
    guests.define_guest(ctx, guests.GuestSpec(THROWAWAY, "clone", "kvm1", "127.0.0.65", 2265,
                                              False))
    try:
        guests.start_guest(ctx.lab_dir, THROWAWAY, "kvm1")
        guests.wait_ready(files / f"{THROWAWAY}.serial.log", timeout=400,
                          alive=lambda: THROWAWAY in guests.running_guests())
        yield {"state": state, "inventory": _inventory(root, store), "files": files,
               "store": store, "evidence": root / "evidence"}
    finally:
        for _, (target, _, _) in MOVES:
            guests.remove_guest(ctx, target, "kvm2")
            (files / f"{target}.img").unlink(missing_ok=True)
        guests.remove_guest(ctx, THROWAWAY, "kvm1")
        guests.remove_guest(ctx, "clone1", "kvm1")
        status = guests.Guests().up(ctx)  # clone1 again, a fresh overlay
        assert status.state == "running", status


def vqual_json(site: dict[str, Any], *args: str) -> tuple[int, dict[str, Any], str]:
    done = run_vqual(*args, "--json", state_dir=site["state"])
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stdout + done.stderr


def test_two_guests_move_from_kvm1_to_kvm2_and_the_summary_verifies(
    site: dict[str, Any]
) -> None:
    import libvirt
    from vqual_lab import guests

    inv, ev = str(site["inventory"]), str(site["evidence"])
    for (source, address, port), _ in MOVES:
        ssh(address, port, f"mkdir -p /srv/app/db && printf 'order of {source}\\n' > "
            "/srv/app/db/orders.dat && printf 'threads = 4\\n' > /srv/app/app.conf && sync")
    baselines = {}
    for (source, _, _), _ in MOVES:
        code, out, err = vqual_json(site, "convert", "baseline", "-i", inv, "--limit", source,
                                    "-s", str(SPEC), "-c", CHANGE, "--evidence-dir", ev)
        assert code == 0, err
        baselines[source] = out["bundle"]
    for (source, _, _), target in MOVES:
        _move(site["files"], site["store"], source, target)
        code, out, err = vqual_json(site, "convert", "qualify", "--baseline", baselines[source],
                                    "-i", inv, "--limit", target[0], "-c", CHANGE,
                                    "--evidence-dir", ev)
        assert code == 0 and out["differences"] == [], err
        assert {d["what"] for d in out["allowed"]} >= {"vm.disk", "vm.nic"}
    sources = [s for (s, _, _), _ in MOVES]
    code, out, err = vqual_json(site, "decommission", "-i", inv, "--limit", ",".join(sources),
                                "-c", CHANGE, "--evidence-dir", ev)
    assert code == 0, err
    conn = libvirt.open(guests.lab_hosts()["kvm1"])
    try:
        assert not set(sources) & {d.name() for d in conn.listAllDomains()}
    finally:
        conn.close()
    assert not any((site["files"] / f"{s}.qcow2").exists() for s in sources)

    vm_args = [a for (s, _, _), (t, _, _) in MOVES for a in ("--vm", f"{s}={t}")]
    code, out, err = vqual_json(site, "migrate", "summary", f"{ev}/{CHANGE}", *vm_args)
    assert code == 0, err
    assert [(v["source"], v["target"]) for v in out["vms"]] == [
        (s, t) for (s, _, _), (t, _, _) in MOVES]
    assert all(v["conversion"]["verdict"] == "pass" and v["decommission"]["verdict"] == "pass"
               for v in out["vms"])
    start = records(Path(out["bundle"]))[0]["data"]
    assert start["mode"] == "migration" and start["migration"]["vms"] == out["vms"]
    assert run_vqual("verify", out["bundle"], state_dir=site["state"]).returncode == 0
    whole = run_vqual("verify", f"{ev}/{CHANGE}", state_dir=site["state"])
    assert whole.returncode == 0, whole.stdout + whole.stderr
