"""A V2V of a lab guest, qualified by difference (`vqual convert`), and the data case.

clone1 (kvm1: qcow2 overlay on a virtio disk, virtio-net NIC) gets application data under
/srv/app and its source baseline is taken. It is then shut down and converted the way a V2V
without virt-v2v is done (docs/conversion.md says why not virt-v2v here): ``qemu-img convert``
flattens its disk into a standalone raw image, and its domain definition is rewritten for the
target: SATA instead of virtio (root ``/dev/sda``), an e1000 NIC instead of virtio-net, a new
name, UUID and forward; it boots as ``vqual-tmp-v2v`` on kvm2. The target passes, and its disk
format, bus and device name and its NIC model show as allowed differences. Then one data file
is changed, one removed and one added on the target: the conversion fails, naming each.

The guests component recreates clone1 afterwards (a fresh overlay), so the lab is as before.
This is the conversion test CI keeps (a few minutes of TCG boots and runs).
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, REPO, run_vqual
from tests.conversion_testlib import converted_xml, records, seal_of, ssh

pytestmark = [pytest.mark.lab]

SPEC = COLLECTION / "specs" / "conversion.yaml"
LAB_INV = REPO / "inventories" / "lab"
SOURCE, TARGET = "clone1", "vqual-tmp-v2v"
TARGET_ADDR, TARGET_PORT = "127.0.0.63", 2263
CHANGE = "CHG0007201"


@pytest.fixture(scope="module")
def v2v(lab: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The source baseline, then the V2V target running on kvm2; clone1 recreated after."""
    import libvirt
    from vqual_lab import guests, manager

    root = tmp_path_factory.mktemp("conversion-lab")
    state = root / "state"
    done = run_vqual("keys", "create", "--name", "Test executor", "--role", "executor",
                     "--service", "--throwaway", state_dir=state)
    assert done.returncode == 0, done.stderr
    from tests.conftest import pin_state

    pin_state(state)
    ctx = manager.context()
    lab_hosts = yaml.safe_load((LAB_INV / "hosts.yml").read_text())["all"]["children"]["clones"]
    common = dict(lab_hosts["vars"])
    source_vars = {**common, **lab_hosts["hosts"][SOURCE], "vqual_app_data": ["/srv/app"]}
    inventory = root / "inv.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        SOURCE: source_vars,
        TARGET: {**source_vars, "ansible_host": TARGET_ADDR, "ansible_port": TARGET_PORT,
                 "vqual_libvirt_uri": guests.lab_hosts()["kvm2"], "vqual_libvirt_domain": TARGET},
    }}}))
    spec_src = guests.VM_BUDGET.spec(SOURCE)
    assert spec_src is not None
    ssh(spec_src.ssh_address, spec_src.ssh_port,
        "mkdir -p /srv/app/db && printf 'order 1\\norder 2\\n' > /srv/app/db/orders.dat && "
        "printf 'alice\\nbob\\n' > /srv/app/db/customers.dat && "
        "printf 'threads = 4\\n' > /srv/app/app.conf && sync")
    evidence = root / "evidence"
    done = run_vqual("convert", "baseline", "-i", str(inventory), "--limit", SOURCE, "-s", str(SPEC),
                     "-c", CHANGE, "--evidence-dir", str(evidence), "--json", state_dir=state)
    assert done.returncode == 0, done.stdout + done.stderr
    baseline = Path(json.loads(done.stdout)["bundle"])

    files = Path(ctx.state()["guests"]["files"])
    uris = guests.lab_hosts()
    src_conn = libvirt.open(uris["kvm1"])
    dst_conn = libvirt.open(uris["kvm2"])
    try:
        dom = src_conn.lookupByName(SOURCE)
        source_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        inside = next(d.find("source").get("file") for d in ET.fromstring(source_xml).iter("disk"))
        inner = inside.rsplit("/", 1)[0]
        dom.destroy()  # the guest synced its data; a V2V converts a stopped VM
        image = files / f"{TARGET}.img"
        subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", str(files / f"{SOURCE}.qcow2"),
                        str(image)], check=True, capture_output=True)
        log = files / f"{TARGET}.serial.log"
        log.unlink(missing_ok=True)
        dst_conn.defineXML(converted_xml(
            source_xml, name=TARGET, disk=f"{inner}/{TARGET}.img",
            serial_log=f"{inner}/{TARGET}.serial.log", forward=(TARGET_ADDR, TARGET_PORT),
            title=f"vqual lab V2V of {SOURCE}"))
        guests.start_guest(ctx.lab_dir, TARGET, "kvm2")
        guests.wait_ready(log, timeout=400, alive=lambda: TARGET in guests.running_guests())
        yield {"state": state, "inventory": inventory, "baseline": baseline,
               "evidence": evidence}
    finally:
        guests.remove_guest(ctx, TARGET, "kvm2")
        (files / f"{TARGET}.img").unlink(missing_ok=True)
        src_conn.close()
        dst_conn.close()
        component = guests.Guests()
        guests.remove_guest(ctx, SOURCE, "kvm1")
        status = component.up(ctx)  # clone1 again, a fresh overlay
        assert status.state == "running", status


def convert_qualify(site: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    done = run_vqual("convert", "qualify", "--baseline", str(site["baseline"]),
                     "-i", str(site["inventory"]), "--limit", TARGET, "-c", CHANGE,
                     "--evidence-dir", str(site["evidence"]), "--json", state_dir=site["state"])
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, payload, done.stdout + done.stderr


def test_v2v_passes_with_the_new_platforms_hardware_as_allowed_differences(
    v2v: dict[str, Any]
) -> None:
    code, out, err = convert_qualify(v2v)
    assert code == 0, err
    assert out["differences"] == []
    allowed = {(d["what"], d["where"]): d for d in out["allowed"]}
    disk = allowed[("vm.disk", "vda")]
    assert (disk["source"]["bus"], disk["source"]["format"], disk["source"]["dev"]) == (
        "virtio", "qcow2", "vda")
    assert (disk["target_value"]["bus"], disk["target_value"]["format"],
            disk["target_value"]["dev"]) == ("sata", "raw", "sda")
    nic = allowed[("vm.nic", "nic0")]
    assert (nic["source"]["model"], nic["target_value"]["model"]) == ("virtio-net-pci", "e1000")
    assert all(what.startswith("vm.") for what, _ in allowed)  # the guest is the same
    bundle = Path(out["bundle"])
    start = records(bundle)[0]["data"]
    assert start["mode"] == "conversion"
    assert start["conversion"]["baseline_seal"] == seal_of(v2v["baseline"])
    assert run_vqual("verify", str(bundle), state_dir=v2v["state"]).returncode == 0


def test_v2v_with_changed_removed_and_added_data_fails_naming_each(
    v2v: dict[str, Any]
) -> None:
    ssh(TARGET_ADDR, TARGET_PORT,
        "printf 'order 1\\norder 2 lost\\n' > /srv/app/db/orders.dat && "
        "rm /srv/app/db/customers.dat && printf 'x\\n' > /srv/app/db/stray.dat && sync")
    code, out, err = convert_qualify(v2v)
    assert code == 1, err
    assert [(d["what"], d["where"]) for d in out["differences"]] == [
        ("data", "/srv/app/db/customers.dat"),
        ("data", "/srv/app/db/orders.dat"),
        ("data", "/srv/app/db/stray.dat"),
    ]
    assert [d["reason"].rsplit("(", 1)[1].split(")")[0] for d in out["differences"]] == [
        "removed", "changed", "added"]
    assert run_vqual("verify", out["bundle"], state_dir=v2v["state"]).returncode == 0
