"""Parts of the KVM rolling patch that need no lab: the executor's parsing, inventory reading
and SSH failure handling; the libvirt cluster platform on libvirt's test driver; the
user-mode forward rewriting used during migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError, NotSupported, PlatformError
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.libvirt.cluster import LibvirtCluster, forwards, shift_forwards
from qualification.rollout.change import load_change
from qualification.platforms.libvirt.patch import (
    KvmHostAccess,
    KvmPatchExecutor,
    half_installed,
    hosts_from_inventory,
    package_diff,
    parse_dpkg_query,
    parse_virsh_version,
    platform_factory,
)

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
LAB_CHANGE = COLLECTION / "specs" / "changes" / "lab-kvm-agent-1.1.yaml"

HOSTVARS: dict[str, dict[str, Any]] = {
    "kvm1": {
        "ansible_host": "127.0.0.11",
        "vqual_libvirt_uri": "qemu+tcp://127.0.0.11/system",
        "vqual_cluster": "lab-kvm",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "/keys/id",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o 'UserKnownHostsFile=/dev/null'",
        "vqual_patch_restart_command": "kill $(cat /run/x/{service}.pid)",
        "vqual_patch_services": {"agent": "agent-svc"},
    },
    "kvm2": {
        "ansible_host": "127.0.0.12",
        "ansible_port": 2222,
        "vqual_libvirt_uri": "qemu+tcp://127.0.0.12/system",
        "vqual_cluster": "lab-kvm",
    },
    # A guest names a libvirt URI too, but belongs to no cluster.
    "clone1": {"ansible_host": "127.0.0.61", "vqual_libvirt_uri": "qemu+tcp://127.0.0.11/system"},
    "other": {"vqual_libvirt_uri": "test:///default", "vqual_cluster": "elsewhere"},
}

DPKG = (
    "libvirt-daemon\t9.0.0-4\tii \n"
    "vqual-lab-agent\t1.1\tii \n"
    "half\t2.0\tiU \n"
    "gone\t1.0\trc \n"
    "garbage line\n"
)


def test_dpkg_query_output_gives_installed_packages_only() -> None:
    assert parse_dpkg_query(DPKG) == {"libvirt-daemon": "9.0.0-4", "vqual-lab-agent": "1.1"}
    assert half_installed(DPKG) == ["half (iU)"]


def test_virsh_version_gives_the_hypervisor_version() -> None:
    text = (
        "Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\n"
        "Using API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\n"
    )
    assert parse_virsh_version(text) == "7.2.22"
    assert parse_virsh_version("") is None  # libvirtd not answering


def test_package_diff_names_changed_added_and_removed() -> None:
    before = {"a": "1", "b": "1", "c": "1"}
    after = {"a": "1", "b": "2", "d": "1"}
    assert package_diff(before, after) == {"b": ["1", "2"], "c": ["1", None], "d": [None, "1"]}
    assert package_diff(before, before) == {}


def test_inventory_gives_the_clusters_hosts_and_their_connection() -> None:
    hosts = hosts_from_inventory(HOSTVARS, "lab-kvm")
    assert sorted(hosts) == ["kvm1", "kvm2"]
    one, two = hosts["kvm1"], hosts["kvm2"]
    assert (one.address, one.port, one.user, one.key_file) == ("127.0.0.11", 22, "root", "/keys/id")
    assert one.ssh_args == ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
    assert one.services == {"agent": "agent-svc"}
    assert one.restart_command == "kill $(cat /run/x/{service}.pid)"
    assert (two.port, two.restart_command) == (2222, "systemctl restart {service}")


def test_inventory_without_the_cluster_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="no KVM host with vqual_cluster 'nope'"):
        hosts_from_inventory(HOSTVARS, "nope")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "vqual_libvirt_uri is not set"),
        ({"vqual_libvirt_uri": "{{ uri }}"}, "vqual_libvirt_uri is not a plain value"),
        ({"vqual_libvirt_uri": "qemu:///system", "ansible_port": "ssh"}, "is no port"),
        (
            {"vqual_libvirt_uri": "qemu:///system", "vqual_patch_services": ["agent"]},
            "vqual_patch_services must map package to service",
        ),
    ],
)
def test_malformed_host_variables_are_named(variables: dict[str, object], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        KvmHostAccess.from_hostvars("h", variables)


def test_ssh_command_line_uses_the_inventory_connection() -> None:
    executor = KvmPatchExecutor(hosts_from_inventory(HOSTVARS, "lab-kvm"))
    argv = executor.ssh_argv("kvm1", "true")
    assert argv[0] == "ssh" and argv[-2:] == ["root@127.0.0.11", "true"]
    assert "BatchMode=yes" in argv
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert argv[argv.index("-p") + 1] == "22"
    assert "UserKnownHostsFile=/dev/null" in argv
    assert executor.ssh_argv("kvm2", "true")[executor.ssh_argv("kvm2", "true").index("-p") + 1] == (
        "2222"
    )


def test_unknown_host_and_reboot_mode_are_bad_input() -> None:
    executor = KvmPatchExecutor(hosts_from_inventory(HOSTVARS, "lab-kvm"))
    with pytest.raises(BadInputError, match="host kvm9 is not in the inventory"):
        executor.installed("kvm9")
    with pytest.raises(BadInputError, match="reboot mode 'cold'"):
        KvmPatchExecutor({}, reboot_mode="cold")


def test_a_host_ssh_cannot_reach_is_a_one_line_platform_error() -> None:
    # Nothing listens on port 1 of this loopback address: a real, immediate ssh failure.
    access = KvmHostAccess(
        "down", "127.0.0.254", "qemu+tcp://127.0.0.254/system", port=1, key_file="/dev/null"
    )
    executor = KvmPatchExecutor({"down": access}, connect_timeout_s=2)
    with pytest.raises(PlatformError) as info:
        executor.installed("down")
    line = info.value.one_line()
    assert "down: ssh failed" in line and "\n" not in line


def test_a_change_without_packages_is_refused_before_any_connection(tmp_path: Path) -> None:
    text = LAB_CHANGE.read_text()
    start = text.index("target:")
    end = text.index("window:")
    body = text[:start] + 'target:\n  hypervisor_build: "1"\n' + text[end:]
    body = body[: body.index("requalify:")]
    path = tmp_path / "change.yaml"
    path.write_text(body)
    change = load_change(path)
    access = KvmHostAccess("down", "127.0.0.254", "qemu+tcp://127.0.0.254/system", port=1)
    with pytest.raises(BadInputError, match="target.packages is empty"):
        KvmPatchExecutor({"down": access}).apply("down", change)


def test_libvirt_answers_is_none_for_a_dead_uri() -> None:
    access = KvmHostAccess("down", "127.0.0.254", "qemu+tcp://127.0.0.254:1/system")
    assert KvmPatchExecutor({"down": access}).libvirt_answers("down") is None


# --- the cluster platform ---------------------------------------------------------------------


def test_cluster_from_inventory_takes_the_clusters_hosts_and_options(tmp_path: Path) -> None:
    variables = {
        h: {**v, "vqual_libvirt_unsafe_migration": True, "vqual_libvirt_forward_offset": 1000}
        for h, v in HOSTVARS.items()
    }
    cluster = LibvirtCluster.from_hostvars(variables, "lab-kvm", state_dir=tmp_path)
    assert cluster.uris == {
        "kvm1": "qemu+tcp://127.0.0.11/system",
        "kvm2": "qemu+tcp://127.0.0.12/system",
    }
    assert (cluster.unsafe_migration, cluster.forward_offset) == (True, 1000)
    variables["kvm2"]["vqual_libvirt_forward_offset"] = 2000
    with pytest.raises(BadInputError, match="differ in their migration options"):
        LibvirtCluster.from_hostvars(variables, "lab-kvm")
    with pytest.raises(BadInputError, match="no libvirt host with vqual_cluster 'x'"):
        platform_factory(HOSTVARS, "x")


def test_cluster_on_the_test_driver_names_hosts_as_the_inventory(tmp_path: Path) -> None:
    factory = platform_factory(HOSTVARS, "elsewhere", state_dir=tmp_path)
    opened = factory()
    assert isinstance(opened, HypervisorPlatform) and isinstance(opened, LibvirtCluster)
    with opened as cluster:
        (host,) = cluster.hosts()
        assert (host.name, host.cluster, host.in_maintenance) == ("other", "elsewhere", False)
        assert [(v.name, v.host) for v in cluster.vms()] == [("test", "other")]
        assert cluster.where("test") == "other"
        assert cluster.clusters()[0].hosts == ("other",)
        assert cluster.host_details() == [
            {"name": "other", "endpoint": "test:///default", "connection_state": "connected"}
        ]
        assert cluster.tasks_in_flight() == []
        cluster.power_off("test")
        assert cluster.enter_maintenance("other").in_maintenance
        assert cluster.host("other").in_maintenance
        assert not cluster.exit_maintenance("other").in_maintenance
        assert cluster.power_on("test").power_state == "running"
        # Migrating to the host it is on changes nothing.
        assert cluster.migrate_vm("test", "other").host == "other"
        with pytest.raises(PlatformError, match="host kvm3 is not in cluster elsewhere"):
            cluster.migrate_vm("test", "kvm3")
        with pytest.raises(PlatformError, match="vm 'nope' not found in cluster elsewhere"):
            cluster.vm("nope")
        with pytest.raises(NotSupported):
            cluster.create_vm(object())  # type: ignore[arg-type]


GUEST_XML = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>g</name>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=net0,restrict=on,hostfwd=tcp:127.0.0.61:2261-:22'/>
  </qemu:commandline>
</domain>"""


def test_forwards_are_read_and_shifted_with_the_rest_unchanged() -> None:
    assert forwards(GUEST_XML) == [("net0", "tcp", "127.0.0.61", 2261, ":22")]
    shifted = shift_forwards(GUEST_XML, 1000)
    assert forwards(shifted) == [("net0", "tcp", "127.0.0.61", 3261, ":22")]
    assert shifted.replace("3261", "2261") == GUEST_XML
    plain = "<domain><name>x</name></domain>"
    assert forwards(plain) == [] and shift_forwards(plain, 1000) == plain
