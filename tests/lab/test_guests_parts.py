"""The guests component's pure parts: budget rules, apt sources, initrd, domain XML.

These need no lab and no root; the image and the guests themselves are tested in
test_guests_image.py and test_guests.py.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qualification.errors import EXIT_PLATFORM, PlatformError
from vqual_lab import guests
from vqual_lab.guests import VM_BUDGET, GuestFiles, VmBudgetError, check_budget


def test_budget_publishes_master_two_clones_and_three_at_once() -> None:
    names = {g.name: g for g in VM_BUDGET.guests}
    assert set(names) == {"master", "clone1", "clone2"}
    assert names["master"].role == "master" and not names["master"].autostart
    assert {names["clone1"].role, names["clone2"].role} == {"clone"}
    assert VM_BUDGET.max_running == 3
    assert VM_BUDGET.throwaway_prefix == "vqual-tmp-"
    # Every forward is its own loopback address and an unprivileged port.
    forwards = {(g.ssh_address, g.ssh_port) for g in VM_BUDGET.guests}
    assert len(forwards) == len(VM_BUDGET.guests)
    assert all(a.startswith("127.") and p >= 1024 for a, p in forwards)


def test_budget_admits_a_third_guest_and_refuses_a_fourth() -> None:
    check_budget("vqual-tmp-a", ["clone1", "clone2"])
    with pytest.raises(VmBudgetError, match="at most 3 may run at once") as err:
        check_budget("vqual-tmp-b", ["clone1", "clone2", "vqual-tmp-a"])
    assert err.value.exit_code == EXIT_PLATFORM


def test_budget_counts_unnamed_running_domains_too() -> None:
    with pytest.raises(VmBudgetError, match="3 guests already run"):
        check_budget("clone2", ["clone1", "someone-elses-guest", "vqual-tmp-x"])


def test_budget_lets_a_running_guest_be_started_again() -> None:
    check_budget("clone1", ["clone1", "clone2", "vqual-tmp-a"])


def test_budget_refuses_unknown_names() -> None:
    with pytest.raises(VmBudgetError, match="not in the VM budget"):
        check_budget("clone3", [])
    with pytest.raises(VmBudgetError, match="not in the VM budget"):
        check_budget("vqual-tmp-", [])


def test_master_may_not_run_while_overlays_use_its_disk() -> None:
    with pytest.raises(VmBudgetError, match="overlays use its disk"):
        check_budget("master", [], clones_of_master=["clone1"])
    check_budget("master", ["clone-less-lab-guest"], clones_of_master=[])


def test_apt_sources_read_deb822_and_one_line_formats(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment\n"
        "deb [arch=amd64 signed-by=/k/one.gpg] http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://mirror.example/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb deb-src\n"
        "# http://old.example/\n"
        "URIs: http://deb.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://other.example/x\n"
        "Suites: nodistro\n"
        "Components: main\n"
        "Enabled: no\n"
    )
    found = guests.apt_sources(tmp_path)
    assert [s.uri for s in found] == ["http://mirror.example/debian", "http://deb.example/debian"]
    assert found[0].keyring == "/k/one.gpg" and found[0].components == ("main", "contrib")
    assert found[1].suites == ("bookworm", "bookworm-updates")
    assert guests.debian_mirror("bookworm", tmp_path).uri == "http://mirror.example/debian"
    with pytest.raises(PlatformError, match="no apt source for 'trixie main'"):
        guests.debian_mirror("trixie", tmp_path)


def test_this_machines_mirror_comes_from_its_apt_configuration() -> None:
    mirror = guests.debian_mirror()
    configured = "\n".join(
        p.read_text() for p in Path("/etc/apt").rglob("*") if p.suffix in (".list", ".sources")
    )
    assert mirror.uri in configured


def test_cpio_newc_archive_lists_back_with_cpio(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio not installed (scripts/setup --lab)")
    data = guests._cpio_newc(
        [
            ("bin", 0o040755, b""),
            ("bin/tool", 0o100755, b"#!/bin/sh\necho hi\n"),
            ("odd", 0o100644, b"x"),
        ]
    )
    listing = (
        subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True)
        .stdout.decode()
        .split()
    )
    assert listing == ["bin", "bin/tool", "odd"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=data, cwd=out, check=True)
    assert (out / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/tool").stat().st_mode & 0o777 == 0o755


def _machine_modules() -> Path:
    dirs = sorted(Path("/lib/modules").glob("*/modules.dep"))
    if not dirs:
        pytest.skip("no kernel modules on this machine (apt linux-image-amd64)")
    return dirs[-1].parent


def test_initrd_modules_come_after_their_dependencies() -> None:
    order = [guests._module_name(p.name) for p in guests.initrd_modules(_machine_modules())]
    for name in ("virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "ext4"):
        assert name in order
    # Dependencies from modules.dep load first.
    assert order.index("virtio") < order.index("virtio_pci")
    assert order.index("jbd2") < order.index("ext4")
    assert order.index("failover") < order.index("net_failover") < order.index("virtio_net")
    assert len(order) == len(set(order))


def test_initrd_modules_name_a_missing_module() -> None:
    with pytest.raises(PlatformError, match="kernel module no_such_thing not found"):
        guests.initrd_modules(_machine_modules(), ["no_such_thing"])


def test_initrd_holds_init_busybox_and_modules_in_order() -> None:
    modules = _machine_modules()
    busybox = guests._static_busybox()
    blob = guests.build_initrd(modules, busybox, guests.ASSETS / "initrd-init.sh")
    listing = (
        subprocess.run(
            ["cpio", "-it", "--quiet"], input=gzip.decompress(blob), capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    assert {"init", "bin/busybox", "modules/order", "modules/ext4.ko"} <= set(listing)
    # Reproducible: the same inputs give the same bytes.
    assert guests.build_initrd(modules, busybox, guests.ASSETS / "initrd-init.sh") == blob


def test_kernel_cmdline_carries_hostname_and_key_without_spaces() -> None:
    line = guests.kernel_cmdline("clone1", "ssh-ed25519 AAAAC3Nza vqual-lab\n")
    words = line.split()
    assert "vqual.hostname=clone1" in words
    key = next(w for w in words if w.startswith("vqual.authkey="))
    import base64

    assert base64.b64decode(key.split("=", 1)[1]) == b"ssh-ed25519 AAAAC3Nza vqual-lab\n"
    assert "console=ttyS0" in words and "root=/dev/vda" in words


def test_domain_xml_of_a_clone_and_the_master() -> None:
    files = GuestFiles(Path("/var/lib/vqual-lab/shared/guests/abc"), "/srv/vqual-shared/guests/abc")
    clone = next(g for g in VM_BUDGET.guests if g.name == "clone1")
    root = ET.fromstring(guests.domain_xml(clone, files, "ssh-ed25519 AAAA x"))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "clone1"
    assert root.findtext("memory") == str(guests.GUEST_MEMORY_MIB)
    assert root.findtext("os/kernel") == "/srv/vqual-shared/guests/abc/vmlinuz"
    assert "vqual.hostname=clone1" in (root.findtext("os/cmdline") or "")
    disk = root.find("devices/disk")
    assert disk is not None
    assert disk.find("source").get("file") == "/srv/vqual-shared/guests/abc/clone1.qcow2"  # type: ignore[union-attr]
    assert disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    channel = root.find("devices/channel/target")
    assert channel is not None and channel.get("name") == "org.qemu.guest_agent.0"
    log = root.find("devices/serial/log")
    assert log is not None and log.get("file") == "/srv/vqual-shared/guests/abc/clone1.serial.log"
    ns = "{http://libvirt.org/schemas/domain/qemu/1.0}"
    args = [a.get("value", "") for a in root.iter(f"{ns}arg")]
    assert f"hostfwd=tcp:{clone.ssh_address}:{clone.ssh_port}-:22" in args[1]
    assert "restrict=on" in args[1]

    master = next(g for g in VM_BUDGET.guests if g.role == "master")
    mroot = ET.fromstring(guests.domain_xml(master, files, "ssh-ed25519 AAAA x"))
    mdisk = mroot.find("devices/disk")
    assert mdisk is not None
    assert mdisk.find("driver").get("type") == "raw"  # type: ignore[union-attr]
    assert mdisk.find("source").get("file").endswith("/master.img")  # type: ignore[union-attr]
    assert root.findtext("uuid") != mroot.findtext("uuid")


def test_domain_xml_escapes_what_it_embeds() -> None:
    files = GuestFiles(Path("/x"), "/srv/a'b&c")
    spec = guests.GuestSpec("vqual-tmp-x", "clone", "kvm1", "127.0.0.65", 2265, autostart=False)
    root = ET.fromstring(guests.domain_xml(spec, files, "ssh-ed25519 AAAA <x>"))
    assert root.findtext("os/kernel") == "/srv/a'b&c/vmlinuz"
