"""An independent observer of a rolling patch: polls the platform, never vqual's call log.

:class:`PlatformObserver` is a thread that opens its *own* connection through a factory (so it
never shares the connection of the code under test), polls every ``interval_s`` seconds and
records a timestamped :class:`Snapshot` of every host (maintenance, connected) and VM (host,
power state). :func:`check_safety` then judges the recorded sequence against the rolling
patch's safety properties:

1. at most one host out of service (in maintenance or not connected) at a time;
2. no powered-on VM on a host in maintenance;
3. no VM arrives on a host while that host is being drained: once a host loses a powered-on
   VM it must not gain one until it has been seen out of service (in maintenance or not connected; while
   it is out, property 2 forbids a powered-on VM there, and a stopped one, such as the OQ
   canary's cold visit to the patched host, is allowed);
4. the set of VMs at the end equals the set at the start.

Polling can miss states shorter than the interval; the properties are judged on what was
seen. A poll that fails (a host's daemon restarting, a connection dropped) is recorded as an
error snapshot and the connection is opened again for the next poll; error snapshots carry no
state and are skipped by the checks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from qualification.platforms.base import HypervisorPlatform, vm_summaries

#: Power states that count as "powered on" (the guest's CPU state is still held by a host).
POWERED_ON = frozenset({"running", "paused", "stopping"})


@dataclass(frozen=True)
class HostView:
    name: str
    in_maintenance: bool
    connected: bool = True

    @property
    def in_service(self) -> bool:
        return self.connected and not self.in_maintenance


@dataclass(frozen=True)
class VmView:
    name: str
    host: str
    power_state: str


@dataclass(frozen=True)
class Snapshot:
    """One poll. ``error`` set means the poll failed and ``hosts``/``vms`` are empty."""

    mono: float
    time: str
    hosts: Mapping[str, HostView] = field(default_factory=dict)
    vms: Mapping[str, VmView] = field(default_factory=dict)
    error: str | None = None


def _utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _connected(platform: HypervisorPlatform) -> dict[str, bool]:
    """Connection state per host where the adapter reports one (vSphere's host details)."""
    details = getattr(platform, "host_details", None)
    if not callable(details):
        return {}
    out: dict[str, bool] = {}
    for row in details():
        state = row.get("connection_state")
        if isinstance(row.get("name"), str) and isinstance(state, str):
            out[row["name"]] = state == "connected"
    return out


def take_snapshot(platform: HypervisorPlatform) -> Snapshot:
    """One poll of ``platform``: every host and VM it reports, with the time of the poll."""
    mono, stamp = time.monotonic(), _utc()
    connected = _connected(platform)
    hosts = {
        h.name: HostView(h.name, bool(h.in_maintenance), connected.get(h.name, True))
        for h in platform.hosts()
    }
    # The light listing (VQ-90): a poll that read every VM's whole configuration took
    # seconds at 1,000 VMs and slowed the simulator the rollout is timed on.
    vms = {v.name: VmView(v.name, v.host, v.power_state) for v in vm_summaries(platform)}
    # A host some VM names but the platform no longer lists (a member that did not answer)
    # is not connected.
    for vm in vms.values():
        if vm.host and vm.host not in hosts:
            hosts[vm.host] = HostView(vm.host, False, connected=False)
    return Snapshot(mono=mono, time=stamp, hosts=hosts, vms=vms)


class PlatformObserver(threading.Thread):
    """Polls a platform on its own connection and keeps every snapshot.

    Args:
        factory: opens a new platform connection (called again after a failed poll).
        interval_s: seconds between the starts of two polls.
        ignore_vm: VMs to leave out of every snapshot (throwaway guests of a requalification
            come and go by design).

    Use as a context manager, or ``start()`` then ``stop()``; ``stop()`` takes one last
    snapshot so the end state is always recorded.
    """

    def __init__(
        self,
        factory: Callable[[], HypervisorPlatform],
        *,
        interval_s: float = 0.2,
        ignore_vm: Callable[[str], bool] = lambda _name: False,
    ) -> None:
        super().__init__(name="rollout-observer", daemon=True)
        self.factory = factory
        self.interval_s = interval_s
        self.ignore_vm = ignore_vm
        self.snapshots: list[Snapshot] = []
        self._stop_event = threading.Event()
        self._platform: HypervisorPlatform | None = None
        self._lock = threading.Lock()

    def poll(self) -> Snapshot:
        """Take one snapshot now (also usable without the thread)."""
        with self._lock:
            try:
                if self._platform is None:
                    self._platform = self.factory()
                snap = take_snapshot(self._platform)
                snap = Snapshot(
                    snap.mono,
                    snap.time,
                    snap.hosts,
                    {n: v for n, v in snap.vms.items() if not self.ignore_vm(n)},
                )
            except Exception as exc:  # noqa: BLE001 - any failure is one error snapshot
                self._drop()
                snap = Snapshot(time.monotonic(), _utc(), error=f"{type(exc).__name__}: {exc}")
            self.snapshots.append(snap)
            return snap

    def _drop(self) -> None:
        if self._platform is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                self._platform.close()
            self._platform = None

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.monotonic()
            self.poll()
            self._stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def stop(self) -> list[Snapshot]:
        """Stop polling, take a final snapshot, close the connection; all snapshots."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=30)
        self.poll()
        with self._lock:
            self._drop()
        return self.snapshots

    def __enter__(self) -> Self:
        self.poll()  # the start state is recorded before the caller does anything
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def violations(self, **kwargs: Any) -> list[str]:
        return check_safety(self.snapshots, **kwargs)

    def timeline(self) -> str:
        """What was observed, one line per change of state (for a failure's message)."""
        return describe(self.snapshots)


def _good(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    return [s for s in snapshots if s.error is None]


def check_safety(
    snapshots: Sequence[Snapshot],
    *,
    exempt_hosts: Iterable[str] | None = None,
    max_out_of_service: int = 1,
) -> list[str]:
    """Violations of the rolling patch's safety properties in an observed sequence.

    Args:
        snapshots: polls in time order (error snapshots are skipped).
        exempt_hosts: hosts not counted as out of service (a host the change excludes stays in
            maintenance throughout); default: the hosts already out of service in the first
            snapshot, which the run under observation did not take out.
        max_out_of_service: property 1's bound.

    Returns:
        One line per violation (first occurrence per host/VM and property), empty if none.
    """
    good = _good(snapshots)
    if not good:
        return ["no successful observation"]
    first, last = good[0], good[-1]
    exempt = (
        set(exempt_hosts)
        if exempt_hosts is not None
        else {h.name for h in first.hosts.values() if not h.in_service}
    )
    problems: list[str] = []
    seen: set[tuple[str, ...]] = set()

    def once(key: tuple[str, ...], message: str) -> None:
        if key not in seen:
            seen.add(key)
            problems.append(message)

    # draining[host] is True from a host's loss of a VM until it is seen out of service.
    draining: dict[str, bool] = {}
    prev: Snapshot | None = None
    for snap in good:
        out = sorted(n for n, h in snap.hosts.items() if not h.in_service and n not in exempt)
        if len(out) > max_out_of_service:
            once(
                ("out", *out),
                f"{snap.time}: {len(out)} hosts out of service at once: " + ", ".join(out),
            )
        for host in snap.hosts.values():
            if host.in_maintenance:
                for vm in snap.vms.values():
                    if vm.host == host.name and vm.power_state in POWERED_ON:
                        once(
                            ("on", vm.name, host.name),
                            f"{snap.time}: VM {vm.name} is {vm.power_state} on host {host.name} "
                            "in maintenance",
                        )
        if prev is not None:
            for name, before in prev.vms.items():
                now = snap.vms.get(name)
                # A drain moves powered-on VMs; a stopped one leaving (the OQ canary's cold
                # visit to another host, and back) does not start one.
                if (now is None or now.host != before.host) and before.power_state in POWERED_ON:
                    draining[before.host] = True
        for name, host in snap.hosts.items():
            if not host.in_service:
                # Out of service: its drain is over. What arrives now is judged by property 2;
                # what arrives after it is back in service is a patched host taking VMs again.
                draining[name] = False
        if prev is not None:
            for name, now in snap.vms.items():
                before_vm = prev.vms.get(name)
                arrived = before_vm is None or before_vm.host != now.host
                if arrived and draining.get(now.host):
                    once(
                        ("arrive", name, now.host),
                        f"{snap.time}: VM {name} arrived on host {now.host} while it was being "
                        "drained",
                    )
        prev = snap
    start, end = set(first.vms), set(last.vms)
    if start != end:
        gone, new = sorted(start - end), sorted(end - start)
        problems.append(
            "VM set changed: "
            + "; ".join(
                part
                for part in (
                    f"missing at the end: {', '.join(gone)}" if gone else "",
                    f"new at the end: {', '.join(new)}" if new else "",
                )
                if part
            )
        )
    return problems


def describe(snapshots: Sequence[Snapshot]) -> str:
    """The observed sequence, one line per poll that differs from the one before: hosts out
    of service and every VM's host and power state; failed polls are counted, not listed."""
    lines: list[str] = []
    last = ""
    errors = 0
    for snap in snapshots:
        if snap.error is not None:
            errors += 1
            continue
        out = ",".join(
            f"{n}:{'maint' if h.in_maintenance else 'down'}"
            for n, h in sorted(snap.hosts.items())
            if not h.in_service
        )
        vms = " ".join(f"{n}@{v.host}/{v.power_state}" for n, v in sorted(snap.vms.items()))
        state = f"out[{out}] {vms}"
        if state != last:
            lines.append(f"{snap.time} {state}")
            last = state
    lines.append(f"({len(snapshots)} polls, {errors} failed)")
    return "\n".join(lines)


def host_sequence(snapshots: Sequence[Snapshot], host: str) -> list[str]:
    """The observed service states of one host, consecutive repeats collapsed:
    ``in-service``, ``maintenance``, ``disconnected``."""
    states: list[str] = []
    for snap in _good(snapshots):
        view = snap.hosts.get(host)
        if view is None:
            continue
        state = (
            "disconnected"
            if not view.connected
            else "maintenance"
            if view.in_maintenance
            else "in-service"
        )
        if not states or states[-1] != state:
            states.append(state)
    return states


def final_placement(snapshots: Sequence[Snapshot]) -> dict[str, str]:
    """VM -> host in the last successful snapshot."""
    good = _good(snapshots)
    return {n: v.host for n, v in good[-1].vms.items()} if good else {}


__all__ = [
    "POWERED_ON",
    "HostView",
    "PlatformObserver",
    "Snapshot",
    "VmView",
    "check_safety",
    "describe",
    "final_placement",
    "host_sequence",
    "take_snapshot",
]
