"""The lab's lifecycle on the real KVM cluster: idempotent up, status, and a down that
destroys guests first and leaves no process and no mount behind.

The down test runs a second, private KVM cluster (own lab dir, own addresses, the base
hard-linked from the session's cache), so the session's lab and the guests on it stay up
for the tests that follow.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from vqual_lab import manager
from vqual_lab.component import (
    LabContext,
    mounts_under,
    pid_alive,
    processes_under,
)
from vqual_lab.kvm import (
    KvmCluster,
    KvmHost,
    Paths,
    ensure_guest_boot,
    guest_xml,
    hosts_from_env,
)

HOSTS = {h.name: h.address for h in hosts_from_env()}
PRIVATE = (KvmHost("kvm1", "127.0.0.171"), KvmHost("kvm2", "127.0.0.172"))

pytestmark = pytest.mark.lab


def test_up_is_idempotent_and_status_reports_running(lab: object) -> None:
    ctx = manager.context()
    again = manager.up(["kvm"], ctx=ctx)
    assert [s.state for s in again] == ["running"]
    assert again[0].detail.startswith("already running")
    (st,) = manager.status(["kvm"], ctx=ctx)
    assert st.state == "running"
    assert all(f"{name} {address}" in st.detail for name, address in HOSTS.items())


def test_inventory_lists_the_running_kvm_hosts(lab: object) -> None:
    ctx = manager.context()
    text = (manager.inventory_dir(ctx) / "ssh_config").read_text()
    assert f"Host kvm1\n  HostName {HOSTS['kvm1']}" in text
    assert "StrictHostKeyChecking no" in text


@pytest.fixture
def private_lab(lab: object, tmp_path: Path) -> tuple[KvmCluster, LabContext]:
    session = Paths.of(manager.context())
    ctx = LabContext(tmp_path, tmp_path / "run", None, lambda _m: None)
    paths = Paths.of(ctx)
    paths.base.parent.mkdir(parents=True)
    # Hard links: the base is only ever read through the overlays.
    subprocess.run(["cp", "-al", str(session.base), str(paths.base)], check=True)
    if session.caps_cache.exists():
        subprocess.run(["cp", "-a", str(session.caps_cache), str(paths.caps_cache)], check=True)
    return KvmCluster(PRIVATE), ctx


def test_down_destroys_guests_and_leaves_no_process_and_no_mount(
    private_lab: tuple[KvmCluster, LabContext],
) -> None:
    import libvirt

    kvm, ctx = private_lab
    paths = Paths.of(ctx)
    started = time.monotonic()
    st = kvm.up(ctx)
    took_up = time.monotonic() - started
    assert st.state == "running", f"{st.detail}\n" + "\n".join(st.log_tail)
    assert kvm.up(ctx).detail.startswith("already running")
    records = ctx.state()["kvm"]["hosts"]
    pids = [r[k] for r in records.values() for k in ("init_pid", "unshare_pid")]
    assert all(pid_alive(p) for p in pids)
    # A running guest, so down has something to destroy.
    conn = libvirt.open(PRIVATE[0].libvirt_uri)
    try:
        conn.createXML(guest_xml("vqual-down-test", ensure_guest_boot(ctx)), 0)
    finally:
        conn.close()
    inside = processes_under([paths.hosts_dir])
    assert len(inside) > len(pids), "the hosts' daemons and QEMU should be visible"
    qemu = [p for p in inside if "qemu-system" in Path(f"/proc/{p}/cmdline").read_text()]
    assert qemu, "the guest's QEMU should run"

    started = time.monotonic()
    down = kvm.down(ctx)
    took_down = time.monotonic() - started
    assert down.state == "stopped", down
    assert re.search(r"\b1 guests destroyed", down.detail), down.detail
    assert not any(pid_alive(p) for p in pids + qemu)
    assert processes_under([ctx.lab_dir]) == []
    assert mounts_under([ctx.lab_dir]) == []
    assert not paths.hosts_dir.exists()
    assert "kvm" not in ctx.state()
    assert kvm.status(ctx).state == "stopped"
    # The machine's /dev/kvm is left as it was: the hosts use their own device nodes.
    assert os.stat("/dev/kvm").st_mode & 0o777 == _DEV_KVM_MODE
    print(f"private kvm: up {took_up:.2f} s, down {took_down:.2f} s")


def test_reboot_keeps_the_patch_ends_the_guests_and_spares_the_other_host(
    private_lab: tuple[KvmCluster, LabContext],
) -> None:
    import libvirt

    kvm, ctx = private_lab
    st = kvm.up(ctx)
    try:
        assert st.state == "running", f"{st.detail}\n" + "\n".join(st.log_tail)
        assert kvm.patch(ctx, "kvm2") == {"vqual-lab-agent": ("1.0", "1.1")}
        conn = libvirt.open(PRIVATE[1].libvirt_uri)
        try:
            conn.createXML(guest_xml("vqual-reboot-test", ensure_guest_boot(ctx)), 0)
        finally:
            conn.close()
        before = ctx.state()["kvm"]["hosts"]
        took = kvm.reboot(ctx, "kvm2")
        after = ctx.state()["kvm"]["hosts"]
        assert after["kvm2"]["init_pid"] != before["kvm2"]["init_pid"]
        assert not pid_alive(before["kvm2"]["init_pid"])
        assert after["kvm1"] == before["kvm1"] and pid_alive(after["kvm1"]["init_pid"])
        assert kvm.exec(ctx, "kvm2", ["hostname"]).stdout.decode().strip() == "kvm2"
        assert kvm.package_version(ctx, "kvm2", "vqual-lab-agent") == "1.1"
        assert kvm.package_version(ctx, "kvm1", "vqual-lab-agent") == "1.0"
        conn = libvirt.open(PRIVATE[1].libvirt_uri)
        try:
            assert [d.name() for d in conn.listAllDomains() if d.isActive()] == []
        finally:
            conn.close()
        print(f"reboot of kvm2 took {took:.2f} s")
    finally:
        assert kvm.down(ctx).state == "stopped"
    assert processes_under([ctx.lab_dir]) == []


def test_a_second_lab_on_the_same_addresses_refuses_to_start(
    private_lab: tuple[KvmCluster, LabContext],
) -> None:
    _, ctx = private_lab
    clash = KvmCluster(hosts_from_env())  # the session lab's addresses, which are up
    st = clash.up(ctx)
    assert st.state == "failed"
    assert "address already in use" in st.detail
    assert processes_under([ctx.lab_dir]) == []
    assert "kvm" not in ctx.state()


_DEV_KVM_MODE = os.stat("/dev/kvm").st_mode & 0o777 if os.path.exists("/dev/kvm") else 0
