"""The rolling patch's independent observer (tests/integration/rollout_observer.py).

The polling side runs against libvirt's in-process test driver (``test:///default``): the
test drives host and VM states through one connection and the observer sees them through its
own (connections of one process to ``test:///default`` share one state while one is open).
The test driver has one host per connection, so the properties that need two hosts (one out
of service at a time, no arrival on a drained host) are checked on recorded sequences built
from the same snapshot type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from qualification.errors import PlatformError
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from tests.integration.rollout_observer import (
    HostView,
    PlatformObserver,
    Snapshot,
    VmView,
    check_safety,
    final_placement,
    host_sequence,
)

URI = "test:///default"
EXTRA = (
    "<domain type='test'><name>obs-extra</name><memory unit='MiB'>64</memory>"
    "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"
)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[LibvirtPlatform]:
    """The connection the test drives states through (held open so state is shared)."""
    with LibvirtPlatform(URI, state_dir=tmp_path / "state") as platform:
        yield platform
        if platform.maintenance_marker().exists():
            platform.exit_maintenance()


def _observer(
    tmp_path: Path, interval_s: float = 0.2, ignore_vm: Callable[[str], bool] = lambda _n: False
) -> PlatformObserver:
    return PlatformObserver(
        lambda: LibvirtPlatform(URI, state_dir=tmp_path / "state"),
        interval_s=interval_s,
        ignore_vm=ignore_vm,
    )


def test_observer_uses_its_own_connection(tmp_path: Path, driver: LibvirtPlatform) -> None:
    obs = _observer(tmp_path)
    obs.poll()
    own = obs._platform
    assert isinstance(own, LibvirtPlatform) and own is not driver
    assert own.conn is not driver.conn
    obs.stop()
    assert obs._platform is None  # stop closes it


def test_records_maintenance_and_power_changes_made_elsewhere(
    tmp_path: Path, driver: LibvirtPlatform
) -> None:
    host = driver.hostname()
    obs = _observer(tmp_path)
    first = obs.poll()
    assert first.hosts[host].in_service
    assert first.vms["test"] == VmView("test", host, "running")
    driver.power_off("test")
    driver.enter_maintenance()
    during = obs.poll()
    driver.exit_maintenance()
    driver.power_on("test")
    obs.stop()
    assert during.hosts[host].in_maintenance and during.vms["test"].power_state == "stopped"
    assert host_sequence(obs.snapshots, host) == ["in-service", "maintenance", "in-service"]
    # A clean stop-maintain-start sequence breaks no property.
    assert check_safety(obs.snapshots) == []
    assert final_placement(obs.snapshots) == {"test": host}


def test_flags_a_powered_on_vm_on_a_host_in_maintenance(
    tmp_path: Path, driver: LibvirtPlatform
) -> None:
    host = driver.hostname()
    obs = _observer(tmp_path)
    obs.poll()
    driver.power_off("test")
    driver.enter_maintenance()
    obs.poll()
    # The adapter refuses this; a platform that allowed it is what the observer must catch.
    driver.conn.lookupByName("test").create()
    obs.poll()
    obs.stop()
    problems = check_safety(obs.snapshots)
    assert len(problems) == 1
    assert f"VM test is running on host {host} in maintenance" in problems[0]


def test_flags_a_vm_set_that_changed(tmp_path: Path, driver: LibvirtPlatform) -> None:
    obs = _observer(tmp_path)
    obs.poll()
    dom = driver.conn.defineXML(EXTRA)
    try:
        obs.poll()
        assert check_safety(obs.snapshots) == ["VM set changed: new at the end: obs-extra"]
    finally:
        dom.undefine()
    obs.stop()
    assert check_safety(obs.snapshots) == []  # back to the start set


def test_missing_vm_at_the_end_is_named(tmp_path: Path, driver: LibvirtPlatform) -> None:
    dom = driver.conn.defineXML(EXTRA)
    obs = _observer(tmp_path)
    try:
        obs.poll()
    finally:
        dom.undefine()
    obs.stop()
    assert check_safety(obs.snapshots) == ["VM set changed: missing at the end: obs-extra"]


def test_ignored_vms_are_left_out(tmp_path: Path, driver: LibvirtPlatform) -> None:
    obs = _observer(tmp_path, ignore_vm=lambda name: name.startswith("obs-"))
    obs.poll()
    dom = driver.conn.defineXML(EXTRA)
    try:
        snap = obs.poll()
    finally:
        dom.undefine()
    obs.stop()
    assert "obs-extra" not in snap.vms and "test" in snap.vms
    assert check_safety(obs.snapshots) == []


def test_thread_polls_until_stopped(tmp_path: Path, driver: LibvirtPlatform) -> None:
    with _observer(tmp_path, interval_s=0.02) as obs:
        deadline = time.monotonic() + 10
        while len(obs.snapshots) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        driver.power_off("test")
        seen = len(obs.snapshots)
        deadline = time.monotonic() + 10
        while len(obs.snapshots) < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    driver.power_on("test")
    assert len(obs.snapshots) >= 5
    times = [s.mono for s in obs.snapshots]
    assert times == sorted(times)
    states = [s.vms["test"].power_state for s in obs.snapshots]
    assert states[0] == "running" and states[-1] == "stopped"
    assert not obs.is_alive()


def test_a_failed_poll_is_recorded_and_the_connection_reopened(
    tmp_path: Path, driver: LibvirtPlatform
) -> None:
    calls: list[str] = []

    def factory() -> LibvirtPlatform:
        # The first open goes to a node file that does not exist: a real connect failure.
        uri = URI if calls else f"test://{tmp_path}/missing-node.xml"
        calls.append(uri)
        return LibvirtPlatform(uri, state_dir=tmp_path / "state")

    obs = PlatformObserver(factory)
    failed = obs.poll()
    ok = obs.poll()
    obs.stop()
    assert failed.error is not None and "PlatformError" in failed.error
    assert failed.hosts == {} and failed.vms == {}
    assert ok.error is None and "test" in ok.vms
    assert len(calls) == 2
    assert check_safety(obs.snapshots) == []  # error snapshots carry no state


def test_connect_failure_is_a_platform_error(tmp_path: Path) -> None:
    # The premise of the test above: this URI really fails to open.
    with pytest.raises(PlatformError):
        LibvirtPlatform(f"test://{tmp_path}/missing-node.xml")
    assert libvirt.getVersion() > 0


# --- properties that need several hosts, on recorded sequences -------------------------------


def _snap(t: float, hosts: dict[str, str], vms: dict[str, str],
          stopped: frozenset[str] = frozenset()) -> Snapshot:
    """hosts: name -> "up" | "maint" | "down"; vms: name -> host (running unless stopped)."""
    return Snapshot(
        mono=t,
        time=f"t{t:g}",
        hosts={
            n: HostView(n, in_maintenance=s == "maint", connected=s != "down")
            for n, s in hosts.items()
        },
        vms={n: VmView(n, h, "stopped" if n in stopped else "running") for n, h in vms.items()},
    )


UP3 = {"h1": "up", "h2": "up", "h3": "up"}


def _rolling(order: list[str]) -> list[Snapshot]:
    """A correct rolling patch of three hosts with one VM each, as an observer sees it."""
    vms = {"a": "h1", "b": "h2", "c": "h3"}
    seq = [_snap(0, UP3, vms)]
    t = 1.0
    for host in order:
        other = next(h for h in order if h != host)
        for vm, where in list(vms.items()):
            if where == host:
                vms[vm] = other
        seq.append(_snap(t, UP3, dict(vms)))
        seq.append(_snap(t + 0.1, {**UP3, host: "maint"}, dict(vms)))
        seq.append(_snap(t + 0.2, {**UP3, host: "down"}, dict(vms)))
        seq.append(_snap(t + 0.3, UP3, dict(vms)))
        t += 1
    return seq


def test_a_correct_rolling_sequence_passes() -> None:
    assert check_safety(_rolling(["h1", "h2", "h3"])) == []


def test_two_hosts_out_of_service_at_once_is_flagged() -> None:
    seq = [
        _snap(0, UP3, {"a": "h1"}),
        _snap(1, {**UP3, "h2": "maint", "h3": "down"}, {"a": "h1"}),
        _snap(2, UP3, {"a": "h1"}),
    ]
    assert check_safety(seq) == ["t1: 2 hosts out of service at once: h2, h3"]
    assert check_safety(seq, max_out_of_service=2) == []


def test_a_host_out_of_service_from_the_start_is_exempt() -> None:
    # h3 is excluded by the change and stays in maintenance: h1's turn is still "one at a time".
    seq = [
        _snap(0, {**UP3, "h3": "maint"}, {"a": "h1"}),
        _snap(1, {**UP3, "h3": "maint"}, {"a": "h2"}),
        _snap(2, {"h1": "maint", "h2": "up", "h3": "maint"}, {"a": "h2"}),
        _snap(3, {**UP3, "h3": "maint"}, {"a": "h2"}),
    ]
    assert check_safety(seq) == []
    assert check_safety(seq, exempt_hosts=()) == ["t2: 2 hosts out of service at once: h1, h3"]


def test_a_vm_arriving_on_a_host_being_drained_is_flagged() -> None:
    seq = [
        _snap(0, UP3, {"a": "h1", "b": "h1", "c": "h3"}),
        _snap(1, UP3, {"a": "h2", "b": "h1", "c": "h3"}),  # h1 starts losing VMs
        _snap(2, UP3, {"a": "h2", "b": "h2", "c": "h1"}),  # ... and gains c: wrong
    ]
    assert check_safety(seq) == ["t2: VM c arrived on host h1 while it was being drained"]


def test_a_swap_within_one_poll_is_flagged_on_both_hosts() -> None:
    # The order inside one poll interval is unknown: a host that lost and gained a VM between
    # two polls may have gained it while draining, so both sides are reported.
    seq = [
        _snap(0, UP3, {"a": "h1", "b": "h2"}),
        _snap(1, UP3, {"a": "h2", "b": "h1"}),
    ]
    assert check_safety(seq) == [
        "t1: VM a arrived on host h2 while it was being drained",
        "t1: VM b arrived on host h1 while it was being drained",
    ]


def test_a_drained_host_may_take_vms_once_back_in_service() -> None:
    seq = [
        _snap(0, UP3, {"a": "h1", "c": "h2"}),
        _snap(1, UP3, {"a": "h2", "c": "h2"}),
        _snap(2, {**UP3, "h1": "maint"}, {"a": "h2", "c": "h2"}),
        _snap(3, UP3, {"a": "h2", "c": "h2"}),
        _snap(4, UP3, {"a": "h1", "c": "h2"}),  # h2's turn: a goes back to the patched h1
    ]
    assert check_safety(seq) == []


def test_the_stopped_canary_may_visit_the_drained_host_in_maintenance() -> None:
    # RP-OQ-01: the stopped canary sits on h1; it goes out to h2 and back while h1 is in
    # maintenance (a cold move), which is no breach of the drain.
    canary = frozenset({"m"})
    seq = [
        _snap(0, UP3, {"a": "h1", "m": "h1"}, canary),
        _snap(1, UP3, {"a": "h2", "m": "h1"}, canary),
        _snap(2, {**UP3, "h1": "maint"}, {"a": "h2", "m": "h2"}, canary),
        _snap(3, {**UP3, "h1": "maint"}, {"a": "h2", "m": "h1"}, canary),
        _snap(4, UP3, {"a": "h2", "m": "h1"}, canary),
    ]
    assert check_safety(seq) == []
    # Polls are coarse: the canary may be seen back on h1 only once h1 is back in service.
    late = [*seq[:3], _snap(3, UP3, {"a": "h2", "m": "h1"}, canary)]
    assert check_safety(late) == []
    # The same stopped VM arriving while h1 is still in service and draining is a breach,
    # and a running one arriving on h1 in maintenance breaks property 2.
    early = [*seq[:2], _snap(2, UP3, {"a": "h2", "m": "h2"}, canary),
             _snap(3, UP3, {"a": "h2", "m": "h1"}, canary)]
    assert check_safety(early) == ["t3: VM m arrived on host h1 while it was being drained"]
    running = [*seq[:3], _snap(3, {**UP3, "h1": "maint"}, {"a": "h2", "m": "h1"})]
    assert check_safety(running) == ["t3: VM m is running on host h1 in maintenance"]


def test_a_drained_host_that_never_left_service_may_not_take_vms() -> None:
    # Draining without maintenance in between (a halted run, say) keeps the host closed.
    seq = [
        _snap(0, UP3, {"a": "h1", "c": "h2"}),
        _snap(1, UP3, {"a": "h2", "c": "h2"}),
        _snap(2, UP3, {"a": "h1", "c": "h2"}),
    ]
    assert check_safety(seq) == ["t2: VM a arrived on host h1 while it was being drained"]


def test_no_successful_observation_is_a_violation() -> None:
    assert check_safety([Snapshot(0.0, "t0", error="PlatformError: down")]) == [
        "no successful observation"
    ]
