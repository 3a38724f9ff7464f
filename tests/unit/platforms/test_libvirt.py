"""LibvirtPlatform against libvirt's real in-process test driver (test:///default), and
probe() / answer_requests(): every request of a hypervisor answered in one connection.

The test driver's node and its default domain ``test`` are fixed by libvirt
(https://libvirt.org/drvtest.html); the values asserted here are that fixed node.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qualification.checks.base import Observation, ProbeRequest
from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import BadArgs, HypervisorPlatform, Placement, VmConfig
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.domain_xml import (
    VQUAL_NS,
    parse_capabilities,
    version_text,
    vm_facts_from_xml,
)
from qualification.platforms.libvirt.observations import IQ_METHODS, answer_requests, probe

URI = "test:///default"


@pytest.fixture
def lv(tmp_path: Path) -> Iterator[LibvirtPlatform]:
    with LibvirtPlatform(URI, state_dir=tmp_path / "state") as platform:
        yield platform


def test_meets_the_protocol(lv: LibvirtPlatform) -> None:
    assert isinstance(lv, HypervisorPlatform)


def test_version_text_unpacks_libvirt_numbers() -> None:
    assert version_text(9_000_000) == "9.0.0"
    assert version_text(10_002_003) == "10.2.3"
    assert version_text(2) == "0.0.2"


def test_about_reports_type_and_versions(lv: LibvirtPlatform) -> None:
    about = lv.about()
    assert (about.platform, about.product, about.version) == ("libvirt", "TEST", "0.0.2")
    assert about.api_version == version_text(lv.conn.getLibVersion())
    assert about.endpoint == URI


def test_node_info_names_the_test_nodes_fields(lv: LibvirtPlatform) -> None:
    assert lv.node_info() == {
        "cpu_model": "i686",
        "memory_mib": 3072,
        "cpus": 16,
        "mhz": 1400,
        "numa_nodes": 2,
        "sockets_per_node": 2,
        "cores_per_socket": 2,
        "threads_per_core": 2,
    }


def test_capabilities_of_the_test_driver(lv: LibvirtPlatform) -> None:
    caps = lv.capabilities()
    assert caps["host"]["arch"] == "i686"
    assert caps["host"]["secmodels"] == ["testSecurity"]
    assert caps["host"]["numa_cells"] == 2
    assert caps["guest"]["os_types"] == ["hvm", "xen"]
    assert caps["guest"]["domain_types"] == ["test"]


KVM_CAPS = """<capabilities>
  <host>
    <uuid>4c4c4544-0042-3010-8056-b4c04f565432</uuid>
    <cpu>
      <arch>x86_64</arch><model>Icelake-Server</model><vendor>Intel</vendor>
      <feature name='vmx'/><feature name='ss'/>
    </cpu>
    <topology><cells num='1'><cell id='0'/></cells></topology>
    <secmodel><model>apparmor</model><doi>0</doi></secmodel>
    <secmodel><model>dac</model><doi>0</doi></secmodel>
  </host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize><emulator>/usr/bin/qemu-system-x86_64</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>
      <domain type='qemu'/><domain type='kvm'/>
    </arch>
  </guest>
</capabilities>"""


def test_parse_capabilities_of_a_kvm_host() -> None:
    caps = parse_capabilities(KVM_CAPS)
    assert caps["host"] == {
        "arch": "x86_64",
        "cpu_model": "Icelake-Server",
        "cpu_vendor": "Intel",
        "features": ["ss", "vmx"],
        "uuid": "4c4c4544-0042-3010-8056-b4c04f565432",
        "numa_cells": 1,
        "secmodels": ["apparmor", "dac"],
        "secmodel_dois": ["0", "0"],
    }
    assert caps["guests"][0]["machines"] == ["pc-i440fx-7.2", "q35"]
    assert caps["guest"]["domain_types"] == ["kvm", "qemu"]


def test_host_facts(lv: LibvirtPlatform) -> None:
    host = lv.host()
    assert host.cpu.count == 16 and host.cpu.sockets == 4 and host.memory_mib == 3072
    assert host.firmware["vendor"] == "LENOVO"  # the test driver's SMBIOS table
    assert host.software["hypervisor"] == "TEST"
    assert host.security_models == ("testSecurity",)
    assert host.in_maintenance is False
    assert lv.hosts() == [host]


def test_host_by_wrong_name_is_refused(lv: LibvirtPlatform) -> None:
    with pytest.raises(PlatformError, match="host elsewhere is not the host of this connection"):
        lv.host("elsewhere")


def test_default_domain_facts(lv: LibvirtPlatform) -> None:
    (vm,) = lv.vms()
    assert (vm.name, vm.power_state, vm.vcpus, vm.memory_mib) == ("test", "running", 2, 8192)
    assert vm.disks[0].source == "/guest/diskimage1" and vm.disks[0].bus == "virtio"
    assert vm.nics[0].mac == "aa:bb:cc:dd:ee:ff" and vm.nics[0].network == "default"
    assert vm.host == lv.hostname()
    assert len(vm.config_digest) == 64


def test_pools_and_networks(lv: LibvirtPlatform) -> None:
    (pool,) = lv.datastores()
    assert (pool.name, pool.kind, pool.active, pool.path) == (
        "default-pool",
        "dir",
        True,
        "/default-pool",
    )
    assert pool.capacity_bytes == pool.available_bytes + pool.allocation_bytes
    (net,) = lv.networks()
    assert (net.name, net.bridge, net.forward_mode, net.active) == (
        "default",
        "virbr0",
        "nat",
        True,
    )


def test_vm_facts_from_xml_reads_firmware_devices_and_placement() -> None:
    xml = f"""<domain type='kvm'>
      <name>master</name><uuid>11111111-2222-3333-4444-555555555555</uuid>
      <metadata><v:placement xmlns:v='{VQUAL_NS}' allowed-hosts='kvm1 kvm2'/></metadata>
      <memory unit='GiB'>4</memory><maxMemory unit='GiB' slots='4'>8</maxMemory>
      <vcpu current='2'>4</vcpu>
      <os firmware='efi'><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
        <loader secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.secboot.fd</loader></os>
      <devices>
        <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
          <source file='/var/lib/libvirt/images/master.qcow2'/><target dev='vda' bus='virtio'/></disk>
        <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
        <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/>
          <model type='virtio'/></interface>
        <tpm model='tpm-crb'/><hostdev mode='subsystem' type='pci'/><serial type='pty'/>
      </devices></domain>"""
    vm = vm_facts_from_xml(xml, host="kvm1", power_state="stopped", persistent=True, autostart=True)
    assert (vm.vcpus, vm.memory_mib, vm.max_memory_mib) == (2, 4096, 8192)
    assert (vm.firmware, vm.secure_boot, vm.machine) == ("efi", True, "pc-q35-7.2")
    assert vm.devices == ("hostdev", "serial", "tpm")
    assert [(d.device, d.driver_format, d.readonly) for d in vm.disks] == [
        ("disk", "qcow2", False),
        ("cdrom", None, True),
    ]
    assert vm.nics[0].kind == "bridge" and vm.nics[0].network == "br0"
    assert vm.placement == Placement(("kvm1", "kvm2"))


def test_define_start_snapshot_revert_delete(lv: LibvirtPlatform) -> None:
    vm = lv.create_vm(VmConfig("lv-a", vcpus=2, memory_mib=128))
    assert (vm.power_state, vm.vcpus, vm.memory_mib, vm.persistent) == ("stopped", 2, 128, True)
    assert lv.power_on("lv-a").power_state == "running"
    snap = lv.snapshot_create("lv-a", "s1", description="before change")
    assert (snap.power_state, snap.current) == ("running", True)
    assert lv.power_off("lv-a", graceful=True).power_state == "stopped"
    assert lv.snapshot_revert("lv-a", "s1").power_state == "running"
    lv.snapshot_delete("lv-a", "s1")
    assert lv.snapshots("lv-a") == []
    lv.power_off("lv-a")
    lv.delete_vm("lv-a")
    assert not lv.vm_exists("lv-a")


def test_operations_refuse_what_would_be_wrong(lv: LibvirtPlatform) -> None:
    with pytest.raises(PlatformError, match="create vm test refused: it already exists"):
        lv.create_vm(VmConfig("test"))
    with pytest.raises(PlatformError, match="delete vm test refused: it is running"):
        lv.delete_vm("test")
    with pytest.raises(PlatformError, match="lookup vm nope failed"):
        lv.vm("nope")
    with pytest.raises(PlatformError, match="lookup snapshot gone of test failed"):
        lv.snapshot_revert("test", "gone")


def test_clone_copies_definition_with_new_identity(lv: LibvirtPlatform) -> None:
    source = lv.create_vm(VmConfig("lv-src"))
    lv.set_placement("lv-src", Placement(("kvm9",)))
    clone = lv.clone_vm("lv-src", "lv-clone")
    assert clone.name == "lv-clone" and clone.uuid != source.uuid
    assert clone.placement == Placement(("kvm9",))  # the placement travels with the copy


def test_clone_copies_storage_volumes_into_the_pool(lv: LibvirtPlatform) -> None:
    pool = lv.conn.storagePoolLookupByName("default-pool")
    vol = pool.createXML(
        "<volume><name>master.img</name><capacity unit='MiB'>10</capacity></volume>", 0
    )
    xml = (
        "<domain type='test'><name>master</name><memory unit='MiB'>64</memory>"
        "<os><type>hvm</type></os><devices><disk type='file' device='disk'>"
        f"<source file='{vol.path()}'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
    )
    lv.create_vm(VmConfig("master", native=xml))
    clone = lv.clone_vm("master", "copy1")
    assert [d.source for d in clone.disks] == ["/default-pool/copy1-vda"]
    assert sorted(v.name() for v in pool.listAllVolumes()) == ["copy1-vda", "master.img"]
    assert lv.vm("master").disks[0].source == vol.path()  # the source keeps its own disk


def test_clone_refuses_a_disk_libvirt_cannot_copy(lv: LibvirtPlatform) -> None:
    lv.power_off("test")
    with pytest.raises(NotSupported, match="/guest/diskimage1 is not a libvirt storage volume"):
        lv.clone_vm("test", "test-copy")
    assert not lv.vm_exists("test-copy")


def test_placement_is_stored_in_vqual_metadata_and_honoured(lv: LibvirtPlatform) -> None:
    lv.create_vm(VmConfig("lv-p"))
    lv.set_placement("lv-p", Placement(("some-other-host",)))
    assert f'xmlns:vqual="{VQUAL_NS}"' in lv.vm_xml("lv-p", inactive=True)
    with pytest.raises(PlatformError, match="placement allows only some-other-host"):
        lv.power_on("lv-p")
    assert lv.vm("lv-p").power_state == "stopped"
    lv.set_placement("lv-p", Placement((lv.hostname(),)))
    assert lv.power_on("lv-p").power_state == "running"
    lv.set_placement("lv-p", Placement())
    assert lv.placement("lv-p") == Placement()


def test_maintenance_marker_lives_in_the_state_dir_and_is_honoured(
    lv: LibvirtPlatform, tmp_path: Path
) -> None:
    with pytest.raises(PlatformError, match="refused: VMs still running: test"):
        lv.enter_maintenance()
    assert not lv.maintenance_marker().exists()
    lv.power_off("test")
    host = lv.enter_maintenance()
    marker = lv.maintenance_marker()
    assert host.in_maintenance and marker.is_relative_to(tmp_path / "state")
    assert marker.parent == tmp_path / "state" / "platforms" / "libvirt" / "maintenance"
    assert json.loads(marker.read_text())["host"] == lv.hostname()
    with pytest.raises(PlatformError, match="is in maintenance mode"):
        lv.power_on("test")
    assert lv.exit_maintenance().in_maintenance is False
    assert lv.power_on("test").power_state == "running"


def test_maintenance_outlives_the_connection(tmp_path: Path) -> None:
    with LibvirtPlatform(URI, state_dir=tmp_path) as first:
        first.power_off("test")
        first.enter_maintenance()
    # A new connection re-reads the test driver's XML (test is running again) but sees the
    # marker, which is why the marker is kept outside libvirt.
    with LibvirtPlatform(URI, state_dir=tmp_path) as second:
        assert second.host().in_maintenance
        second.exit_maintenance()


def test_state_dir_defaults_to_vqual_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VQUAL_STATE_DIR", str(tmp_path / "env-state"))
    with LibvirtPlatform(URI) as platform:
        assert platform.maintenance_marker().is_relative_to(tmp_path / "env-state")


def test_test_driver_forgets_everything_when_its_connections_close() -> None:
    with LibvirtPlatform(URI) as first:
        first.create_vm(VmConfig("only-here"))
        # While a connection is open, the process shares test:///default's state ...
        with LibvirtPlatform(URI) as concurrent:
            assert concurrent.vm_exists("only-here")
    # ... and the next open re-reads the driver's XML: an OQ sequence split over two
    # module calls (two processes, two opens) would find nothing of the first.
    with LibvirtPlatform(URI) as later:
        assert not later.vm_exists("only-here")


def test_unsupported_operations_raise_not_supported(lv: LibvirtPlatform) -> None:
    lv.create_vm(VmConfig("lv-m"))
    lv.power_on("lv-m")
    with pytest.raises(NotSupported, match="migrate lv-m to test:///default not supported"):
        lv.migrate_vm("lv-m", URI)
    with pytest.raises(NotSupported, match="libvirt has no cluster object"):
        lv.clusters()
    with pytest.raises(NotSupported, match="no event history"):
        lv.events()


def test_readonly_connection_refuses_changes() -> None:
    with LibvirtPlatform(URI, readonly=True) as ro:
        assert ro.about().product == "TEST"
        with pytest.raises(PlatformError, match="define vm ro-x failed"):
            ro.create_vm(VmConfig("ro-x"))


def test_bad_uri_is_one_line_platform_error() -> None:
    with pytest.raises(PlatformError) as caught:
        LibvirtPlatform("test:///no/such/node.xml")
    text = caught.value.one_line()
    assert text.startswith("test:///no/such/node.xml: connect failed:")
    assert "\n" not in text


def test_password_in_uri_never_reaches_the_message() -> None:
    with pytest.raises(PlatformError) as caught:
        LibvirtPlatform("qemu+tcp://admin:Sup3rSecret@127.0.0.1:1/system")
    assert "Sup3rSecret" not in str(caught.value)
    assert "admin:***@127.0.0.1" in str(caught.value)


def test_domain_type_preference_is_checked(tmp_path: Path) -> None:
    with (
        LibvirtPlatform(URI, domain_type="qemu") as platform,
        pytest.raises(PlatformError, match="domain type qemu is not offered for hvm/i686"),
    ):
        platform.create_vm(VmConfig("dt"))
    with LibvirtPlatform(URI) as platform:
        assert '<domain type="test">' in platform.config_xml(VmConfig("dt"))


# -- probe() / answer_requests() -----------------------------------------------------------

FIELDS = {"value", "raw", "method", "error", "not_executed", "actions", "seconds"}


def req(method: str, **args: Any) -> dict[str, Any]:
    return ProbeRequest("libvirt", method, args).to_json()


def test_every_iq_method_answers(tmp_path: Path) -> None:
    requests = [req(m) for m in IQ_METHODS if m not in ("domain", "guest_os")] + [
        req("domain", name="test"),
        # the support list the plug-in adds from the spec's data file
        req("guest_os", support="guest_os", entries=[]),
    ]
    observations, changed = probe(URI, requests, state_dir=tmp_path)
    assert changed is False
    assert set(observations) == {r["key"] for r in requests}
    for key, obs in observations.items():
        assert set(obs) == FIELDS, key
        assert obs["error"] is None and obs["not_executed"] is None, (key, obs)
        assert obs["actions"] == []
        assert URI in obs["method"]
        json.dumps(obs)  # plain JSON, as a module must return
        Observation.from_json(obs)
    by_method = {r["method"]: observations[r["key"]] for r in requests}
    assert by_method["version"]["value"]["type"] == "TEST"
    assert by_method["nodeinfo"]["value"]["cpus"] == 16
    assert by_method["capabilities"]["raw"].lstrip().startswith("<capabilities>")
    assert by_method["capabilities"]["value"]["guest"]["os_types"] == ["hvm", "xen"]
    assert by_method["domain"]["value"]["name"] == "test"
    assert "<domain type='test'>" in by_method["domain"]["raw"]
    assert by_method["host"]["value"]["in_maintenance"] is False


def test_oq_lifecycle_reports_steps_and_actions(tmp_path: Path) -> None:
    requests = [req("oq_lifecycle", steps=["define", "start", "stop", "undefine"])]
    observations, changed = probe(URI, requests, run_id="R-1", state_dir=tmp_path)
    obs = observations[requests[0]["key"]]
    assert changed is True
    assert obs["value"]["vm"] == "vqual-oq-R-1"
    assert {s: v["verdict"] for s, v in obs["value"]["steps"].items()} == {
        "define": "pass",
        "start": "pass",
        "stop": "pass",
        "undefine": "pass",
    }
    assert [a["name"] for a in obs["actions"]] == [
        "vm.define",
        "vm.start",
        "vm.stop",
        "vm.undefine",
    ]


def test_two_oq_requests_use_two_throwaway_domains(tmp_path: Path) -> None:
    requests = [req("oq_lifecycle", steps=["define"]), req("oq_lifecycle", steps=["start"])]
    observations, _ = probe(URI, requests, run_id="R2", state_dir=tmp_path)
    names = [observations[r["key"]]["value"]["vm"] for r in requests]
    assert names == ["vqual-oq-R2", "vqual-oq-R2-2"]


def test_oq_migrate_is_not_executed_on_the_test_driver_and_cleans_up(tmp_path: Path) -> None:
    requests = [req("oq_migrate", destination="test:///default")]
    observations, _ = probe(URI, requests, run_id="R3", state_dir=tmp_path)
    obs = observations[requests[0]["key"]]
    assert obs["not_executed"] is not None
    assert "not supported" in obs["not_executed"] and "virDomainMigrate" in obs["not_executed"]
    assert obs["error"] is None
    assert [a["name"] for a in obs["actions"]] == ["vm.define_start", "vm.migrate"]
    assert obs["actions"][1]["verdict"] == "not-executed"
    assert obs["value"]["cleanup"] == {"verdict": "pass", "reason": None}


def test_check_mode_does_not_execute_oq_but_reads_iq(tmp_path: Path) -> None:
    requests = [req("version"), req("oq_lifecycle"), req("oq_migrate", destination=URI)]
    observations, changed = probe(URI, requests, check_mode=True, state_dir=tmp_path)
    assert changed is False
    assert observations[requests[0]["key"]]["value"]["type"] == "TEST"
    for r in requests[1:]:
        assert observations[r["key"]]["not_executed"] == "check mode"
        assert observations[r["key"]]["actions"] == []


def test_bad_uri_gives_one_line_errors_for_every_request() -> None:
    requests = [req("version"), req("oq_lifecycle")]
    observations, changed = probe("test:///no/such/node.xml", requests)
    assert changed is False
    for r in requests:
        error = observations[r["key"]]["error"]
        assert error.startswith("test:///no/such/node.xml: connect failed: ")
        assert "\n" not in error and "Traceback" not in error


def test_unknown_method_and_bad_args_are_errors_not_exceptions(tmp_path: Path) -> None:
    requests = [
        req("reboot_host"),
        req("domain"),
        req("domain", name="missing"),
        req("oq_lifecycle", steps=["fly"]),
        req("oq_lifecycle", steps="define"),
        req("oq_migrate"),
    ]
    observations, _ = probe(URI, requests, state_dir=tmp_path)
    errors = [observations[r["key"]]["error"] for r in requests]
    assert errors[0].startswith("unknown libvirt probe method 'reboot_host' (known: version")
    assert errors[1] == "domain: argument 'name' (a domain name) is required"
    assert errors[2] == "test:///default: lookup vm missing failed: Domain not found"
    assert errors[3].startswith("oq_lifecycle: unknown OQ step 'fly'")
    assert errors[4] == "oq_lifecycle: argument 'steps' must be a list of step names"
    assert errors[5] == "oq_migrate: argument 'destination' (a libvirt URI) is required"


def test_unsafe_run_id_is_refused() -> None:
    with pytest.raises(BadArgs, match="run_id '../x' is not a safe name"):
        probe(URI, [req("version")], run_id="../x")


def test_answer_requests_never_raises_and_ignores_empty_run_id() -> None:
    bad = answer_requests(URI, [req("version")], run_id="../x")
    assert "not a safe name" in bad[req("version")["key"]]["error"]
    good = answer_requests(URI, [req("oq_lifecycle", steps=["define"])], run_id="")
    value = good[req("oq_lifecycle", steps=["define"])["key"]]["value"]
    assert value["vm"].startswith("vqual-oq-") and len(value["vm"]) == len("vqual-oq-") + 23
