"""The KVM patch executor and the cluster platform on the lab's KVM hosts, for real.

kvm2 is patched (vqual-lab-agent 1.0 -> 1.1 from the lab repository over SSH) and its
libvirtd restarted while clone2 runs on it; clone1 is live-migrated with its SSH forward and
back. Every host is reset to the baseline afterwards (the lab's ``KvmCluster.reset``).
Run under the lab lock: ``VQUAL_LAB=1 VQUAL_LAB_KEEP=1 flock /tmp/vqual-lab.lock
.venv/bin/pytest tests/integration/test_rolling_patch_kvm_executor.py``.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from qualification.execution.inventory import read_hostvars
from vqual_lab import manager, repo
from vqual_lab.component import LabContext
from vqual_lab.kvm import KvmCluster
from qualification.platforms.libvirt.cluster import LibvirtCluster
from qualification.rollout.change import load_change
from qualification.platforms.libvirt.endpoint import SSH_VARS
from qualification.platforms.libvirt.patch import KvmPatchExecutor, platform_factory

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
CHANGE = COLLECTION / "specs" / "changes" / "lab-kvm-agent-1.1.yaml"


@pytest.fixture(scope="module")
def ctx(lab: object) -> LabContext:
    return manager.context()


@pytest.fixture(scope="module")
def kvm(ctx: LabContext) -> KvmCluster:
    comp = manager.component("kvm")
    assert isinstance(comp, KvmCluster)
    assert comp.status(ctx).state == "running"
    return comp


@pytest.fixture(scope="module")
def hostvars(ctx: LabContext) -> dict[str, dict[str, object]]:
    return read_hostvars(manager.inventory_dir(ctx) / "hosts.yml", names=SSH_VARS,
                         patterns=("vqual_.*",))


@pytest.fixture
def executor(hostvars: dict[str, dict[str, object]]) -> KvmPatchExecutor:
    return KvmPatchExecutor.from_inventory(hostvars, "lab-kvm")


@pytest.fixture
def baseline(kvm: KvmCluster, ctx: LabContext) -> Iterator[None]:
    yield
    kvm.reset(ctx)


def _agent_version(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}:8080/version", timeout=5) as resp:
        return str(resp.read().decode().strip())


def _guest_hostname(address: str, port: int, key: str) -> str:
    done = subprocess.run(
        [
            "ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=30", f"root@{address}", "hostname",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done.stdout.strip()


def test_installed_reads_the_hosts_own_package_database(
    executor: KvmPatchExecutor, kvm: KvmCluster, ctx: LabContext
) -> None:
    for host in ("kvm1", "kvm2"):
        installed = executor.installed(host)
        assert installed[repo.AGENT] == kvm.package_version(ctx, host, repo.AGENT)
        assert installed["libvirt-daemon"]  # the hypervisor's own packages are listed
        assert installed["hypervisor_version"]  # "Running hypervisor: QEMU x.y.z"
    health = executor.health("kvm1")
    assert health["ok"] and health["problems"] == [] and health["libvirt"]["product"] == "QEMU"


def test_apply_upgrades_one_host_and_reboot_restarts_its_libvirtd(
    executor: KvmPatchExecutor,
    kvm: KvmCluster,
    ctx: LabContext,
    hostvars: dict[str, dict[str, object]],
    baseline: None,
) -> None:
    change = load_change(CHANGE)
    address = str(hostvars["kvm2"]["ansible_host"])
    logged = len(executor.upgrades_logged("kvm2", [repo.AGENT]))
    other_before = kvm.package_version(ctx, "kvm1", repo.AGENT)
    done = executor.apply("kvm2", change)
    assert done["changed"] == {repo.AGENT: [repo.BASE_VERSION, "1.1"]}
    assert done["before"][repo.AGENT] == repo.BASE_VERSION and done["after"][repo.AGENT] == "1.1"
    assert done["restarted"] == [repo.AGENT]
    assert kvm.package_version(ctx, "kvm2", repo.AGENT) == "1.1"
    assert kvm.package_version(ctx, "kvm1", repo.AGENT) == other_before  # only kvm2 changed
    new_lines = executor.upgrades_logged("kvm2", [repo.AGENT])[logged:]
    assert len(new_lines) == 1 and new_lines[0].split()[-2:] == [repo.BASE_VERSION, "1.1"]
    # The agent was restarted by the host's restart command and serves the new version.
    assert _agent_version(address) == "1.1"
    # A second apply at the target changes nothing and logs no second upgrade.
    again = executor.apply("kvm2", change)
    assert again["changed"] == {} and again["restarted"] == []
    assert len(executor.upgrades_logged("kvm2", [repo.AGENT])[logged:]) == 1

    with LibvirtCluster.from_hostvars(hostvars, "lab-kvm") as cluster:
        running = {v.name for v in cluster.vms() if v.host == "kvm2" and v.power_state == "running"}
        pid = executor._daemon_pid("kvm2")
        seconds = executor.reboot("kvm2", 60)
        assert 0 < seconds < 60
        assert executor._daemon_pid("kvm2") not in ("", pid)
        assert executor.health("kvm2")["ok"]
        # The cluster platform opens a new connection to the restarted daemon by itself;
        # the guests there kept running through the restart.
        after = {v.name for v in cluster.vms() if v.host == "kvm2" and v.power_state == "running"}
        assert after == running


def test_cluster_migrates_a_lab_guest_with_its_forward_and_back(
    hostvars: dict[str, dict[str, object]], tmp_path: Path
) -> None:
    clone = hostvars["clone1"]
    key = str(clone["ansible_ssh_private_key_file"])
    address, port = str(clone["ansible_host"]), int(str(clone["ansible_port"]))
    connect = platform_factory(hostvars, "lab-kvm", state_dir=tmp_path)
    cluster = connect()
    assert isinstance(cluster, LibvirtCluster)
    with cluster:
        start = cluster.where("clone1")
        other = "kvm2" if start == "kvm1" else "kvm1"
        try:
            moved = cluster.migrate_vm("clone1", other)
            assert (moved.host, moved.power_state) == (other, "running")
            assert not cluster.member(start).vm_exists("clone1")
            # Same address and port as the inventory says, live and in the definition.
            xml = cluster.member(other).vm_xml("clone1", inactive=True)
            assert f"hostfwd=tcp:{address}:{port}-:22" in xml
            assert cluster.live_forwards(other, "clone1") == [("tcp", address, port)]
            assert _guest_hostname(address, port, key) == "clone1"
        finally:
            back = cluster.migrate_vm("clone1", start)
        assert back.host == start
        assert _guest_hostname(address, port, key) == "clone1"
