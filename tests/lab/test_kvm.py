"""The lab's KVM cluster, for real: SSH hosts with their own package databases, a libvirtd
each over TCP, live migration host to host, a patch on one host only, and variations."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vqual_lab import manager, repo
from vqual_lab.component import LabContext
from vqual_lab.kvm import KvmCluster, ensure_guest_boot, guest_xml, hosts_from_env

pytestmark = pytest.mark.lab

# kvm1 127.0.0.11 and kvm2 127.0.0.12 unless $VQUAL_LAB_KVM_HOSTS moves them.
HOSTS = {h.name: h.address for h in hosts_from_env()}
URI1 = f"qemu+tcp://{HOSTS['kvm1']}/system"
URI2 = f"qemu+tcp://{HOSTS['kvm2']}/system"


@pytest.fixture(scope="module")
def ctx(lab: object) -> LabContext:
    return manager.context()


@pytest.fixture(scope="module")
def kvm(ctx: LabContext) -> KvmCluster:
    comp = manager.component("kvm")
    assert isinstance(comp, KvmCluster)
    st = comp.status(ctx)
    assert st.state == "running", f"kvm not running: {st.detail}\n" + "\n".join(st.log_tail)
    return comp


@pytest.fixture
def baseline(kvm: KvmCluster, ctx: LabContext) -> Iterator[None]:
    """Every host back at the baseline after the test (variations and patches undone)."""
    yield
    kvm.reset(ctx)


def ssh(ctx: LabContext, host: str, command: str) -> subprocess.CompletedProcess[str]:
    config = manager.inventory_dir(ctx) / "ssh_config"
    return subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", host, command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ssh_ok(ctx: LabContext, host: str, command: str) -> str:
    done = ssh(ctx, host, command)
    assert done.returncode == 0, f"{host}: {command}: {done.stderr}"
    return done.stdout


def test_each_host_answers_ssh_as_itself(kvm: KvmCluster, ctx: LabContext) -> None:
    for host, address in HOSTS.items():
        assert ssh_ok(ctx, host, "hostname").strip() == host
        # sshd listens on the host's own address only.
        listening = ssh_ok(ctx, host, "cat /proc/net/tcp")
        own = "".join(f"{int(p):02X}" for p in reversed(address.split(".")))
        assert f"{own}:0016" in listening


def test_each_host_has_its_own_pid_namespace_and_services(kvm: KvmCluster, ctx: LabContext) -> None:
    for host, address in HOSTS.items():
        comms = ssh_ok(ctx, host, "ps -e -o pid=,comm=")
        table = {int(p): c for p, c in (line.split(None, 1) for line in comms.splitlines())}
        assert table[1] == "vqual-init", table  # PID 1 is the host's own init, not the machine's
        for daemon in ("sshd", "virtlogd", "libvirtd", "cron", "busybox"):
            assert daemon in table.values(), f"{host}: {daemon} not running: {table}"
        with urllib.request.urlopen(f"http://{address}:8080/version", timeout=5) as resp:
            assert resp.read().decode().strip() == repo.BASE_VERSION


def test_libvirtd_answers_over_tcp_on_each_host(kvm: KvmCluster) -> None:
    import libvirt

    uuids = set()
    for host, address in HOSTS.items():
        conn = libvirt.open(f"qemu+tcp://{address}/system")
        try:
            assert conn.getHostname() == host
            assert conn.getType() == "QEMU"
            caps = conn.getCapabilities()
            uuids.add(re.search(r"<uuid>([^<]+)</uuid>", caps).group(1))  # type: ignore[union-attr]
        finally:
            conn.close()
    assert len(uuids) == len(HOSTS), "host UUIDs must differ or migration refuses"


def test_inventory_names_hosts_and_key_path(kvm: KvmCluster, ctx: LabContext) -> None:
    inv_dir = manager.inventory_dir(ctx)
    inv = yaml.safe_load((inv_dir / "hosts.yml").read_text())
    group = inv["all"]["children"]["kvm_hosts"]
    assert {h: v["ansible_host"] for h, v in group["hosts"].items()} == HOSTS
    assert group["hosts"]["kvm1"]["vqual_libvirt_uri"] == URI1
    gvars = group["vars"]
    key = Path(gvars["ansible_ssh_private_key_file"])
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in (inv_dir / "hosts.yml").read_text()
    assert gvars["vqual_cluster"] == "lab-kvm"
    assert gvars["vqual_mixing"]["allowed"] is False
    compartments = {h: v["vqual_fire_compartment"] for h, v in group["hosts"].items()}
    assert len(set(compartments.values())) == len(HOSTS), compartments
    assert gvars["vqual_target_kinds"] == ["linux_host", "kvm_host", "libvirt_hypervisor"]
    assert "StrictHostKeyChecking=no" in gvars["ansible_ssh_common_args"]


def _serial(kvm: KvmCluster, ctx: LabContext, host: str, name: str) -> str:
    path = f"/var/log/libvirt/qemu/{name}-serial.log"
    return kvm.exec(ctx, host, ["cat", path]).stdout.decode(errors="replace")


def _wait_for(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"vqual-lab-guest tick (\d+)", text)]


def test_live_migration_kvm1_to_kvm2_keeps_the_guest_running(
    kvm: KvmCluster, ctx: LabContext
) -> None:
    import libvirt

    boot = ensure_guest_boot(ctx)
    name = f"vqual-migrate-{uuid.uuid4().hex[:8]}"  # its own serial log, also on a rerun
    src = libvirt.open(URI1)
    dst = libvirt.open(URI2)
    try:
        dom = src.createXML(guest_xml(name, boot), 0)
        _wait_for(lambda: "ready" in _serial(kvm, ctx, "kvm1", name), 90, "guest ready line")
        _wait_for(lambda: _ticks(_serial(kvm, ctx, "kvm1", name)), 30, "first tick")
        before = max(_ticks(_serial(kvm, ctx, "kvm1", name)))
        started = time.monotonic()
        moved = dom.migrate(dst, libvirt.VIR_MIGRATE_LIVE, None, None, 0)
        took = time.monotonic() - started
        assert moved.name() == name
        assert name not in [d.name() for d in src.listAllDomains()]
        on_dst = dst.lookupByName(name)
        assert on_dst.isActive()
        # The guest goes on counting where it was, on kvm2: it was moved, not rebooted.
        _wait_for(lambda: _ticks(_serial(kvm, ctx, "kvm2", name)), 30, "tick on kvm2")
        after = _ticks(_serial(kvm, ctx, "kvm2", name))
        assert min(after) > before, (before, after)
        assert "ready" not in _serial(kvm, ctx, "kvm2", name)
        print(f"live migration took {took:.2f} s")
    finally:
        src.close()
        dst.close()
        for uri in (URI1, URI2):
            _destroy(uri, name)


def test_patch_over_ssh_changes_only_that_hosts_dpkg_database(
    kvm: KvmCluster, ctx: LabContext, baseline: None
) -> None:
    query = "dpkg-query -W -f='${Version}' vqual-lab-agent"
    status_before = {h: ssh_ok(ctx, h, "md5sum /var/lib/dpkg/status") for h in HOSTS}
    assert {h: ssh_ok(ctx, h, query) for h in HOSTS} == {"kvm1": "1.0", "kvm2": "1.0"}
    ssh_ok(
        ctx,
        "kvm2",
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "--only-upgrade -o Dpkg::Options::=--force-confold vqual-lab-agent",
    )
    assert {h: ssh_ok(ctx, h, query) for h in HOSTS} == {"kvm1": "1.0", "kvm2": "1.1"}
    assert ssh_ok(ctx, "kvm1", "md5sum /var/lib/dpkg/status") == status_before["kvm1"]
    assert ssh_ok(ctx, "kvm2", "md5sum /var/lib/dpkg/status") != status_before["kvm2"]
    # apt in the hosts knows only the lab repository.
    sources = ssh_ok(ctx, "kvm2", "apt-get indextargets --format '$(URI)'")
    assert sources.strip() and all(u.startswith("file:") for u in sources.split())


def test_patch_api_upgrades_and_restarts_the_agent(
    kvm: KvmCluster, ctx: LabContext, baseline: None
) -> None:
    changed = kvm.patch(ctx, "kvm1")
    assert changed == {repo.AGENT: ("1.0", "1.1")}
    assert kvm.package_version(ctx, "kvm2", repo.AGENT) == "1.0"
    with urllib.request.urlopen(f"http://{HOSTS['kvm1']}:8080/version", timeout=5) as resp:
        assert resp.read().decode().strip() == "1.1"
    with urllib.request.urlopen(f"http://{HOSTS['kvm2']}:8080/version", timeout=5) as resp:
        assert resp.read().decode().strip() == "1.0"


def test_variations_make_one_host_differ_and_reset_undoes_them(
    kvm: KvmCluster, ctx: LabContext, baseline: None
) -> None:
    mode = "stat -c %a /etc/ssh/sshd_config"
    manager.apply_variation("kvm2:loose-mode", ctx=ctx)
    manager.apply_variation("kvm2:pkg-version", ctx=ctx)
    assert ssh_ok(ctx, "kvm2", mode).strip() == "666"
    assert ssh_ok(ctx, "kvm1", mode).strip() == "644"
    assert kvm.package_version(ctx, "kvm2", repo.AGENT) == repo.VARIANT_VERSION
    assert kvm.package_version(ctx, "kvm1", repo.AGENT) == repo.BASE_VERSION
    assert ctx.state()["kvm"]["variations"] == {"kvm2": ["loose-mode", "pkg-version"]}
    manager.reset("kvm2", ctx=ctx)
    assert ssh_ok(ctx, "kvm2", mode).strip() == "644"
    assert kvm.package_version(ctx, "kvm2", repo.AGENT) == repo.BASE_VERSION
    assert ctx.state()["kvm"]["variations"] == {}


def test_unknown_variation_is_bad_input(kvm: KvmCluster, ctx: LabContext) -> None:
    from qualification.errors import BadInputError

    with pytest.raises(BadInputError, match="unknown variation"):
        manager.apply_variation("kvm2:purple", ctx=ctx)
    with pytest.raises(BadInputError, match="no lab KVM host"):
        manager.apply_variation("kvm9:loose-mode", ctx=ctx)


def test_libvirtd_restart_keeps_running_guests(kvm: KvmCluster, ctx: LabContext) -> None:
    import libvirt

    boot = ensure_guest_boot(ctx)
    name = f"vqual-restart-{uuid.uuid4().hex[:8]}"
    conn = libvirt.open(URI2)
    try:
        dom = conn.createXML(guest_xml(name, boot), 0)
        guest_uuid = dom.UUIDString()
    finally:
        conn.close()
    try:
        # A guest still starting when libvirtd stops is killed on reconnect (reason=daemon);
        # a running one is re-attached, which is what this test is about.
        _wait_for(lambda: "ready" in _serial(kvm, ctx, "kvm2", name), 90, "guest ready line")
        kvm.restart_service(ctx, "kvm2", "libvirtd")
        conn = libvirt.open(URI2)
        try:
            assert conn.lookupByUUIDString(guest_uuid).isActive()
            time.sleep(2)  # and it stays so after the reconnect has settled
            assert conn.lookupByUUIDString(guest_uuid).isActive()
        finally:
            conn.close()
    finally:
        _destroy(URI2, name)


def _destroy(uri: str, name: str) -> None:
    import libvirt

    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains():
            if dom.name() == name:
                with contextlib.suppress(libvirt.libvirtError):  # ended meanwhile
                    dom.destroy()
    finally:
        conn.close()


def test_testinfra_ssh_backend_sees_files_processes_and_ports(
    kvm: KvmCluster, ctx: LabContext
) -> None:
    import testinfra

    config = str(manager.inventory_dir(ctx) / "ssh_config")
    for name, address in HOSTS.items():
        host = testinfra.get_host(f"ssh://{name}", ssh_config=config)
        assert host.check_output("hostname") == name
        assert host.file("/etc/ssh/sshd_config").mode == 0o644
        assert host.package("vqual-lab-agent").version == repo.BASE_VERSION
        assert host.process.filter(comm="libvirtd"), f"{name}: no libvirtd"
        assert host.socket(f"tcp://{address}:16509").is_listening
        assert host.socket(f"tcp://{address}:8080").is_listening


def test_ansible_reaches_every_host_through_the_lab_inventory(
    kvm: KvmCluster, ctx: LabContext
) -> None:
    import json
    import os
    import sys

    inventory = manager.inventory_dir(ctx) / "hosts.yml"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "-i",
            str(inventory),
            "kvm_hosts",
            "-m",
            "ansible.builtin.setup",
            "-a",
            "filter=ansible_hostname",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # The ad-hoc output is "<host> | SUCCESS => {json}" per host.
    seen = {}
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^(\S+) \| SUCCESS => ", done.stdout, re.MULTILINE):
        result, _ = decoder.raw_decode(done.stdout, match.end())
        seen[match.group(1)] = result["ansible_facts"]["ansible_hostname"]
    assert seen == {h: h for h in HOSTS}, done.stdout
