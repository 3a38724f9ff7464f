"""KVM cluster OQ parts that need no lab: tag and XML, heartbeat arithmetic, the test driver,
cleanup's target list and its refusal of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.platforms.libvirt.cleanup import libvirt_targets, lifecycle_names_pattern
from qualification.errors import BadInputError
from qualification.platforms.libvirt import guest_oq as g
from qualification.platforms.libvirt.observations import answer_requests
from tests.conftest import run_vqual

TEMPLATE = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>master</name><uuid>70b73945-5363-5b97-aaba-493b324d58a1</uuid><title>t</title>
  <memory unit='KiB'>393216</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/srv/s/master.img'/><target dev='vda' bus='virtio'/></disk>
    <serial type='pty'><log file='/srv/s/master.serial.log' append='off'/></serial>
  </devices>
  <qemu:commandline><qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=n0,restrict=on,hostfwd=tcp:127.0.0.60:2260-:22'/></qemu:commandline>
</domain>"""


def test_throwaway_xml_overlays_the_template_and_carries_the_tag() -> None:
    tag = g.ThrowawayTag("R1", "mig", "2026-01-01T00:00:00.000000Z", ("/srv/s/x.qcow2",))
    xml = g.throwaway_xml(TEMPLATE, "vqual-tmp-R1-mig", "/srv/s/x.qcow2", tag)
    assert "<name>vqual-tmp-R1-mig</name>" in xml
    assert "70b73945" not in xml  # libvirt gives the copy its own UUID
    assert "/srv/s/x.qcow2" in xml and "master.img" not in xml
    assert "type=\"qcow2\"" in xml
    assert "master.serial.log" not in xml  # the template's console log is not shared
    assert "hostfwd" not in xml and "restrict=on" in xml  # no forward to clash with
    assert g.tag_of(xml) == tag
    assert g.tag_of(TEMPLATE) is None


def test_retagging_replaces_the_tag_and_keeps_the_files_listed() -> None:
    first = g.ThrowawayTag("R1", "bak", "t0", ("/a.qcow2",))
    second = g.ThrowawayTag("R1", "bak", "t0", ("/a.qcow2", "/a-backup.qcow2"))
    xml = g.with_tag(g.with_tag(TEMPLATE, first), second)
    assert g.tag_of(xml) == second
    assert xml.count("throwaway") == 2  # one element: open and close tag


def test_throwaway_names_refuse_unsafe_run_ids() -> None:
    assert g.throwaway_name("20261126T044648Z-092679", "mig") == (
        "vqual-tmp-20261126T044648Z-092679-mig"
    )
    with pytest.raises(g.PlatformError):
        g.throwaway_name("../etc", "mig")


def test_heartbeat_gap_and_frozen_time() -> None:
    data = b"1 1000000000\n2 1100000000\n3 1200000000\n4 1900000000\n5 2000000000\n6 20"
    beats = g.parse_heartbeat(data)
    assert [b.counter for b in beats] == [1, 2, 3, 4, 5]  # the torn last line is dropped
    assert g.max_gap_s(beats) == pytest.approx(0.7)
    assert g.max_gap_s(beats, since_ns=1_900_000_000) == pytest.approx(0.1)
    # 3 s passed on the host between the reads, 1 s on the guest: it stood still 2 s.
    assert g.frozen_s(10.0, 13.0, 1_000_000_000, 2_000_000_000) == pytest.approx(2.0)


def test_the_test_driver_reports_not_executed_never_a_number() -> None:
    obs = answer_requests(
        "test:///default",
        [
            {"key": "m", "method": "oq_guest_migrate",
             "args": {"template": "test", "destination": "test:///default"}},
            {"key": "b", "method": "oq_backup_restore", "args": {"template": "test"}},
        ],
        run_id="R1",
    )
    for key in ("m", "b"):
        assert obs[key]["error"] is None
        assert "test driver runs no guest OS" in obs[key]["not_executed"]
        assert "interruption_s" not in obs[key]["value"]
        assert obs[key]["actions"] == []  # nothing was made


def test_a_host_without_oq_configuration_is_not_executed_with_the_reason() -> None:
    obs = answer_requests(
        "test:///default", [{"key": "m", "method": "oq_guest_migrate", "args": {}}], run_id="R1"
    )
    assert "vqual_libvirt_oq.template" in obs["m"]["not_executed"]


def test_cleanup_targets_each_uri_once() -> None:
    targets = libvirt_targets({
        "kvm1": {"vqual_libvirt_uri": "qemu+tcp://h1/system"},
        "clone1": {"vqual_libvirt_uri": "qemu+tcp://h1/system"},
        "kvm2": {"vqual_libvirt_uri": "qemu+tcp://h2/system"},
        "web": {"ansible_host": "10.0.0.1"},
    })
    assert targets == {"qemu+tcp://h1/system": ["clone1", "kvm1"],
                       "qemu+tcp://h2/system": ["kvm2"]}
    with pytest.raises(BadInputError):
        libvirt_targets({"x": {"vqual_libvirt_uri": "{{ lookup('env', 'U') }}"}})


def test_lifecycle_names_match_only_their_run() -> None:
    pattern = lifecycle_names_pattern("20261126T044648Z-092679")
    assert pattern.match("vqual-oq-20261126T044648Z-092679")
    assert pattern.match("vqual-oq-20261126T044648Z-092679-2")
    assert not pattern.match("vqual-oq-20261126T044648Z-092679x")
    assert not pattern.match("vqual-oq-20261126T044648Z-092670")


def test_cleanup_command_refuses_a_bad_run_id_before_touching_anything(
    executor_state: Path, tmp_path: Path
) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {hosts: {h: {vqual_libvirt_uri: 'test:///default'}}}\n")
    done = run_vqual("cleanup", "../x", "-i", str(inv), state_dir=executor_state)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "run id" in done.stderr


def test_cleanup_command_on_the_test_driver_finds_nothing_of_another_run(
    executor_state: Path, tmp_path: Path
) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all: {hosts: {h: {vqual_libvirt_uri: 'test:///default'}}}\n")
    done = run_vqual("cleanup", "R-none", "-i", str(inv), "--json", state_dir=executor_state)
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout)
    assert result["ok"] and result["removed"] == []
    assert result["targets"][0]["hosts"] == ["h"]


def test_guest_oq_check_shares_one_run_and_never_invents_a_number() -> None:
    from qualification.checks.base import StepNotExecuted
    from qualification.checks.libvirt import LibvirtGuestOq

    check = LibvirtGuestOq()
    assert check.validate_params({"test": "migrate", "field": "interruption_s"}) is None
    assert "field" in str(check.validate_params({"test": "backup_restore",
                                                 "field": "interruption_s"}))
    assert "test" in str(check.validate_params({"field": "verdict"}))
    assert check.validate_params({"test": "migrate", "load_mib": 64}) is None
    assert "load_mib" in str(check.validate_params({"test": "migrate", "load_mib": 4096}))
    assert "load_mib" in str(check.validate_params({"test": "backup_restore", "load_mib": 8}))
    # A different load is a different run; the same load is shared.
    assert (check.request({"test": "migrate", "load_mib": 64}).key()
            != check.request({"test": "migrate"}).key())
    # Every field of the migration test is one request: one migration per host.
    assert (check.request({"test": "migrate", "field": "verdict", "load_mib": 64}).key()
            == check.request({"test": "migrate", "field": "interruption_s", "load_mib": 64}).key())
    passed = {"verdict": "pass", "interruption_s": 0.13}
    assert check.extract(passed, {"test": "migrate", "field": "interruption_s"}).value == 0.13
    failed = {"verdict": "fail", "reason": "migrate refused"}
    observed = check.extract(failed, {"test": "migrate", "field": "verdict"})
    assert (observed.value, observed.reason) == ("fail", "migrate refused")
    with pytest.raises(StepNotExecuted, match="migrate refused"):
        check.extract(failed, {"test": "migrate", "field": "interruption_s"})


def test_cleanup_removes_the_maintenance_marker_its_run_set_and_no_other(
    executor_state: Path, tmp_path: Path
) -> None:
    """A run killed inside the OQ maintenance round trip leaves its marker; cleanup of that
    run removes it, while another run's marker and a marker without a run id (a rolling
    patch keeps a failed host in maintenance on purpose) stay."""
    import json
    import shutil

    from qualification.platforms.libvirt.adapter import LibvirtPlatform

    state = tmp_path / "state"
    shutil.copytree(executor_state, state)
    with LibvirtPlatform("test:///default", state_dir=state) as platform:
        platform.power_off("test")
        platform.enter_maintenance(run_id="R-killed")
        ours = platform.maintenance_marker()
        assert platform.host().in_maintenance
        markers = ours.parent
        (markers / "other-host.json").write_text(json.dumps({"host": "h2", "run_id": "R-else"}))
        (markers / "patched-host.json").write_text(json.dumps({"host": "h3"}))
        inv = tmp_path / "hosts.yml"
        inv.write_text("all: {hosts: {h: {vqual_libvirt_uri: 'test:///default'}}}\n")
        done = run_vqual("cleanup", "R-killed", "-i", str(inv), "--json", state_dir=state)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["removed"] == [f"maintenance of {platform.host().name}"]
        assert not ours.exists() and not platform.host().in_maintenance
        assert sorted(p.name for p in markers.iterdir()) == ["other-host.json", "patched-host.json"]
