"""What the conversion lab tests share (tests/lab/test_conversion.py, test_migration.py,
test_p2v.py): reading a bundle's records and seal, a command in a lab guest over SSH, and a
lab guest's definition rewritten for the target platform."""

from __future__ import annotations

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def records(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(json.loads(line)["payload"]))
            for line in (bundle / "records.jsonl").read_text().splitlines()]


def seal_of(bundle: Path) -> str:
    for line in (bundle / "records.jsonl").read_bytes().splitlines():
        if json.loads(base64.b64decode(json.loads(line)["payload"]))["kind"] == "run.end":
            return hashlib.sha256(line).hexdigest()
    raise AssertionError(f"{bundle} has no run.end")


def ssh(address: str, port: int, command: str) -> str:
    from vqual_lab import guests, manager

    return guests.ssh_run(manager.context().lab_dir, address, port, command, timeout=120)


def converted_xml(source_xml: str, *, name: str, disk: str, serial_log: str,
                  forward: tuple[str, int], title: str | None = None) -> str:
    """A lab guest's inactive definition rewritten for the target platform: raw disk on SATA,
    an e1000 NIC, a new name, no UUID (libvirt gives a new one), its own serial log and SSH
    forward; ``title`` replaces the title when given."""
    ET.register_namespace("qemu", QEMU_NS)
    root = ET.fromstring(source_xml)
    root.find("name").text = name  # type: ignore[union-attr]
    root.remove(root.find("uuid"))  # type: ignore[arg-type]
    old_title = root.find("title")
    if title is not None and old_title is not None:
        old_title.text = title
    cmdline = root.find("os/cmdline")
    cmdline.text = cmdline.text.replace("root=/dev/vda", "root=/dev/sda")  # type: ignore[union-attr]
    devices = root.find("devices")
    assert devices is not None
    old = devices.find("disk")
    assert old is not None
    devices.remove(old)
    new = ET.SubElement(devices, "disk", {"type": "file", "device": "disk"})
    ET.SubElement(new, "driver", {"name": "qemu", "type": "raw"})
    ET.SubElement(new, "source", {"file": disk})
    ET.SubElement(new, "target", {"dev": "sda", "bus": "sata"})
    for dev in devices.findall("serial") + devices.findall("console"):
        log = dev.find("log")
        if log is not None:
            log.set("file", serial_log)
    for arg in root.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg"):
        value = arg.get("value", "")
        if "hostfwd=" in value:
            arg.set("value", value.split("hostfwd=")[0]
                    + f"hostfwd=tcp:{forward[0]}:{forward[1]}-:22")
        elif value.startswith("virtio-net-pci,"):
            arg.set("value", "e1000," + value.split(",", 1)[1])
    return ET.tostring(root, encoding="unicode")
