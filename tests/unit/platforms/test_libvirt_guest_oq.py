"""The guest cycle OQ (clone, power cycle, snapshot, maintenance) without a lab: clone XML
identity, the test driver's honest not-executed, the marker's run id. (The check type's parts:
tests/unit/checks/test_libvirt.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from qualification.platforms.libvirt import guest_cycle
from qualification.platforms.libvirt import guest_oq as g
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.observations import answer_requests

TEMPLATE = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>master</name><uuid>70b73945-5363-5b97-aaba-493b324d58a1</uuid>
  <memory unit='KiB'>393216</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/srv/s/master.img'/><target dev='vda' bus='virtio'/></disk>
    <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/>
    </interface>
  </devices>
  <qemu:commandline><qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.60:2260-:22'/>
    <qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=n0,addr=0x10'/>
  </qemu:commandline>
</domain>"""
TAG = g.ThrowawayTag("R1", "cyc", "2026-01-01T00:00:00.000000Z", ("/srv/s/x.qcow2",))


def test_template_macs_count_qemus_default_for_a_nic_without_one() -> None:
    assert g.configured_macs(TEMPLATE) == ["52:54:00:aa:bb:cc", None]
    # QEMU gives the second NIC (index 1) 52:54:00:12:34:57.
    assert g.effective_macs(TEMPLATE) == ["52:54:00:aa:bb:cc", "52:54:00:12:34:57"]


def test_a_clone_gets_new_macs_on_every_nic_and_keeps_the_network() -> None:
    xml = g.throwaway_xml(TEMPLATE, "vqual-tmp-R1-cyc", "/srv/s/x.qcow2", TAG,
                          mac="52:54:00:01:02:03")
    assert g.configured_macs(xml) == ["52:54:00:01:02:03", "52:54:00:01:02:04"]
    assert not set(g.effective_macs(xml)) & set(g.effective_macs(TEMPLATE))
    assert "netdev=n0,addr=0x10" in xml and "hostfwd" not in xml
    assert "70b73945" not in xml
    # Without mac the template's NICs are kept as they are (the existing behaviour).
    same = g.throwaway_xml(TEMPLATE, "vqual-tmp-R1-cyc", "/srv/s/x.qcow2", TAG)
    assert g.configured_macs(same) == g.configured_macs(TEMPLATE)


def test_new_macs_are_local_random_and_never_qemus_default() -> None:
    macs = {g.new_mac() for _ in range(200)}
    assert len(macs) > 190
    assert all(m.startswith("52:54:00:") and len(m) == 17 for m in macs)
    assert g.QEMU_DEFAULT_MAC not in macs


def test_the_test_driver_runs_no_cycle_and_makes_nothing(tmp_path: Path) -> None:
    obs = answer_requests(
        "test:///default",
        [{"key": "c", "method": "oq_guest_cycle",
          "args": {"template": "test", "destination": "test:///default"}}],
        run_id="R1", state_dir=tmp_path,
    )["c"]
    assert obs["error"] is None and obs["actions"] == []
    assert "test driver runs no guest OS" in obs["not_executed"]
    for part in guest_cycle.CYCLE_PARTS:
        assert obs["value"][part]["verdict"] == "not-executed"
    assert not (tmp_path / "platforms").exists()  # no maintenance marker was written


def test_a_missing_template_is_a_one_line_error_before_anything_is_made() -> None:
    obs = answer_requests(
        "qemu:///nonexistent-socket-h2", [{"key": "c", "method": "oq_guest_cycle",
                                          "args": {"template": "t"}}], run_id="R1",
    )["c"]
    assert obs["error"] and "\n" not in obs["error"]
    obs = answer_requests("test:///default", [{"key": "c", "method": "oq_guest_cycle",
                                               "args": {}}], run_id="R1")["c"]
    assert "vqual_libvirt_oq.template" in obs["not_executed"]


def test_the_maintenance_marker_names_the_run_that_wrote_it(tmp_path: Path) -> None:
    with LibvirtPlatform("test:///default", state_dir=tmp_path) as platform:
        platform.power_off("test")  # the test driver's one domain runs; maintenance needs none
        facts = platform.enter_maintenance(run_id="R7")
        assert facts.in_maintenance
        body = json.loads(platform.maintenance_marker().read_text())
        assert body["run_id"] == "R7" and body["host"] == facts.name
        assert guest_cycle._marked_by(platform, "R7") and not guest_cycle._marked_by(platform, "R8")
        platform.exit_maintenance()
        assert not guest_cycle._marked_by(platform, "R7")
        # Without a run id the marker keeps the format's four fields.
        platform.enter_maintenance()
        assert sorted(json.loads(platform.maintenance_marker().read_text())) == [
            "endpoint", "host", "since", "uuid"]
