"""The guest cycle OQ (clone, power cycle, snapshot, maintenance) without a lab: clone XML
identity, the check type's parts, the test driver's honest not-executed, the marker's run id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualification.checks.base import StepNotExecuted
from qualification.checks.libvirt import LibvirtGuestOq
from qualification.platforms import libvirt_guest_oq as g
from qualification.platforms.libvirt import LibvirtPlatform, answer_requests

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
    for part in g.CYCLE_PARTS:
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


def test_the_four_cycle_tests_share_one_run_and_read_their_part() -> None:
    check = LibvirtGuestOq()
    keys = {check.request({"test": t, "field": "verdict"}).key() for t in g.CYCLE_PARTS}
    assert len(keys) == 1
    assert check.request({"test": "clone"}).key() != check.request({"test": "migrate"}).key()
    assert check.validate_params({"test": "snapshot", "field": "marker_read"}) is None
    assert "field" in str(check.validate_params({"test": "maintenance", "field": "marker_read"}))
    assert "load_mib" in str(check.validate_params({"test": "clone", "load_mib": 8}))
    value = {
        "clone": {"verdict": "pass", "reason": None, "uuid": "u1", "macs": ["52:54:00:01:02:03"]},
        "power_cycle": {"verdict": "fail", "reason": "boot id did not change"},
        "snapshot": {"verdict": "pass", "reason": None, "marker_read": "m1"},
        "maintenance": {"verdict": "not-executed", "reason": "host kvm1 still runs clone1"},
    }
    assert check.extract(value, {"test": "clone"}).value == "pass"
    assert check.extract(value, {"test": "clone", "field": "uuid"}).value == "u1"
    # A failed part carries its own reason and its values, not the other parts'.
    power = check.extract(value, {"test": "power_cycle"})
    assert (power.value, power.reason) == ("fail", "boot id did not change")
    assert "uuid" not in power.measured and "marker_read" not in power.measured
    assert check.extract(value, {"test": "snapshot", "field": "marker_read"}).value == "m1"
    with pytest.raises(StepNotExecuted, match="clone1"):
        check.extract(value, {"test": "maintenance"})
    with pytest.raises(StepNotExecuted, match="boot id did not change"):
        check.extract(value, {"test": "power_cycle", "field": "boot_ids"})


def test_the_maintenance_marker_names_the_run_that_wrote_it(tmp_path: Path) -> None:
    with LibvirtPlatform("test:///default", state_dir=tmp_path) as platform:
        platform.power_off("test")  # the test driver's one domain runs; maintenance needs none
        facts = platform.enter_maintenance(run_id="R7")
        assert facts.in_maintenance
        body = json.loads(platform.maintenance_marker().read_text())
        assert body["run_id"] == "R7" and body["host"] == facts.name
        assert g._marked_by(platform, "R7") and not g._marked_by(platform, "R8")
        platform.exit_maintenance()
        assert not g._marked_by(platform, "R7")
        # Without a run id the marker keeps the format's four fields.
        platform.enter_maintenance()
        assert sorted(json.loads(platform.maintenance_marker().read_text())) == [
            "endpoint", "host", "since", "uuid"]
