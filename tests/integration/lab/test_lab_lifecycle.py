"""The lab manager's lifecycle on the real KVM cluster: idempotent up, status, and a down
that destroys guests first and leaves no process and no mount behind."""

from __future__ import annotations

import os
import re
import time

import pytest

from qualification.lab import manager
from qualification.lab.component import mounts_under, pid_alive, processes_under
from qualification.lab.kvm import KvmCluster, Paths, ensure_guest_boot, guest_xml, hosts_from_env

HOSTS = {h.name: h.address for h in hosts_from_env()}

pytestmark = pytest.mark.lab


def test_up_is_idempotent_and_status_reports_running(lab: object) -> None:
    ctx = manager.context()
    again = manager.up(["kvm"], ctx=ctx)
    assert [s.state for s in again] == ["running"]
    assert again[0].detail.startswith("already running")
    (st,) = manager.status(["kvm"], ctx=ctx)
    assert st.state == "running"
    assert all(f"{name} {address}" in st.detail for name, address in HOSTS.items())


def test_down_destroys_guests_and_leaves_nothing_then_up_again(lab: object) -> None:
    import libvirt

    ctx = manager.context()
    kvm = manager.component("kvm")
    assert isinstance(kvm, KvmCluster)
    paths = Paths.of(ctx)
    records = ctx.state()["kvm"]["hosts"]
    pids = [r[k] for r in records.values() for k in ("init_pid", "unshare_pid")]
    assert all(pid_alive(p) for p in pids)
    # A running guest, so down has something to destroy.
    conn = libvirt.open(f"qemu+tcp://{HOSTS['kvm1']}/system")
    try:
        conn.createXML(guest_xml("vqual-down-test", ensure_guest_boot(ctx)), 0)
    finally:
        conn.close()
    assert processes_under([paths.hosts_dir]), "the hosts' processes should be visible"

    started = time.monotonic()
    (st,) = manager.down(["kvm"], ctx=ctx)
    took = time.monotonic() - started
    assert st.state == "stopped", st
    assert re.search(r"\d+ guests destroyed", st.detail), st.detail
    assert not any(pid_alive(p) for p in pids)
    assert processes_under([paths.hosts_dir]) == []
    assert mounts_under([paths.hosts_dir, paths.base, paths.shared]) == []
    assert not paths.hosts_dir.exists()
    assert "kvm" not in ctx.state()
    # Nothing answers on the hosts' addresses any more.
    (after,) = manager.status(["kvm"], ctx=ctx)
    assert after.state == "stopped"
    # The machine's /dev/kvm is left as it was: the hosts use their own device nodes.
    assert os.path.exists("/dev/kvm")
    print(f"kvm down took {took:.2f} s")

    # Bring it back for the tests that follow in this session (warm: base is cached).
    started = time.monotonic()
    (up,) = manager.up(["kvm"], ctx=ctx)
    print(f"kvm warm up took {time.monotonic() - started:.2f} s")
    assert up.state == "running", f"{up.detail}\n" + "\n".join(up.log_tail)


def test_inventory_lists_only_running_components(lab: object) -> None:
    ctx = manager.context()
    text = (manager.inventory_dir(ctx) / "ssh_config").read_text()
    assert f"Host kvm1\n  HostName {HOSTS['kvm1']}" in text
    assert "StrictHostKeyChecking no" in text
