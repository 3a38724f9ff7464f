"""The Master-VM image itself, booted with QEMU directly (no libvirt, no KVM hosts).

Needs root, debootstrap, QEMU and the machine's apt repositories (``scripts/setup --lab``);
marked ``lab``. The image comes from the lab's cache (built on first use).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qualification.errors import PlatformError
from vqual_lab import guests
from vqual_lab.component import LabContext, pid_alive

pytestmark = pytest.mark.lab

# A loopback address and port no lab guest uses (the budget's guests are 127.0.0.60-62).
DIRECT_ADDRESS = "127.0.0.69"
DIRECT_PORT = 2269


@pytest.fixture(scope="module")
def image() -> guests.MasterImage:
    return guests.build_master_image(LabContext.default().lab_dir)


def _debugfs(image: Path, request: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", request, str(image)], capture_output=True, text=True, check=True
    ).stdout


def test_image_is_cached_by_its_digest(image: guests.MasterImage) -> None:
    again = guests.build_master_image(LabContext.default().lab_dir)
    assert again.digest == image.digest and not again.built
    recorded = json.loads((image.directory / "build.json").read_text())
    assert recorded["digest"] == image.digest
    assert recorded["inputs"]["packages"] == list(guests.GUEST_PACKAGES)
    assert recorded["inputs"]["mirror"] == guests.debian_mirror().uri


def test_image_is_generalised(image: guests.MasterImage) -> None:
    # An empty machine id and no SSH host keys: every clone makes its own at first boot.
    stat = _debugfs(image.image, "stat /etc/machine-id")
    assert "Size: 0" in stat
    listing = _debugfs(image.image, "ls /etc/ssh")
    assert "ssh_host_" not in listing
    assert "sshd_config" in listing
    assert "vqual-guest-boot" in _debugfs(image.image, "ls /usr/local/sbin")


@pytest.fixture(scope="module")
def direct(
    image: guests.MasterImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[guests.DirectGuest, Path]]:
    work = tmp_path_factory.mktemp("direct")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    guest = guests.boot_direct(
        image,
        "direct1",
        work,
        ssh_address=DIRECT_ADDRESS,
        ssh_port=DIRECT_PORT,
        authorized_key=key.with_suffix(".pub").read_text(),
    )
    try:
        yield guest, key
    finally:
        guest.stop()
    assert not pid_alive(guest.pid)


def test_direct_boot_prints_ready_with_its_identity(
    direct: tuple[guests.DirectGuest, Path],
) -> None:
    guest, _ = direct
    assert guest.ready["host"] == "direct1"
    assert len(guest.ready["machine-id"]) == 32
    log = guest.serial_log.read_text(errors="replace")
    assert "first boot: machine id generated" in log
    assert "first boot: SSH host keys generated" in log


def test_direct_guest_answers_ssh_with_the_given_key(
    direct: tuple[guests.DirectGuest, Path],
) -> None:
    guest, key = direct
    out = subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-p",
            str(DIRECT_PORT),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"root@{DIRECT_ADDRESS}",
            "hostname; cat /etc/machine-id",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == ["direct1", guest.ready["machine-id"]]


def test_direct_guest_agent_ping_exec_osinfo_files(direct: tuple[guests.DirectGuest, Path]) -> None:
    guest, _ = direct
    agent = guest.agent()
    agent.ping()
    assert agent.osinfo()["id"] == "debian"
    result = agent.exec(["/bin/cat", "/etc/hostname"])
    assert (result.exitcode, result.stdout) == (0, b"direct1\n")
    failing = agent.exec(["/bin/sh", "-c", "echo oops >&2; exit 3"])
    assert (failing.exitcode, failing.stderr) == (3, b"oops\n")
    payload = os.urandom(100_000)  # several agent chunks
    agent.write_file("/tmp/vqual-agent-test", payload)
    assert agent.read_file("/tmp/vqual-agent-test") == payload
    with pytest.raises(PlatformError, match="guest-file-open"):
        agent.read_file("/no/such/file")


def test_overlay_leaves_the_master_image_unchanged(
    image: guests.MasterImage, direct: tuple[guests.DirectGuest, Path]
) -> None:
    # The guest wrote its identity into its overlay, not into the master.
    assert "Size: 0" in _debugfs(image.image, "stat /etc/machine-id")
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(direct[0].disk)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info["backing-filename"] == str(image.image)
