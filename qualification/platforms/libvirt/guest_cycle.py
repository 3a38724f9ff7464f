"""Clone, power cycle, snapshot with memory and a maintenance round trip on one booted
throwaway guest (``oq_guest_cycle``): one run answers the four tests of ``CYCLE_PARTS``."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import libvirt

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import PAUSED, RUNNING, STOPPED, STOPPING, redact_endpoint
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_backup import _read_marker, _write_marker
from qualification.platforms.libvirt.guest_oq import (
    BOOT_TIMEOUT_S,
    MARKER_FILE,
    Agent,
    GuestOqResult,
    ThrowawayTag,
    _boot,
    _boot_id,
    _cannot_run_guests,
    _cleanup_action,
    _clone,
    _power,
    _Recorder,
    _remove,
    _require_template,
    throwaway_name,
    with_tag,
)
from qualification.platforms.oq import utc_stamp

CYCLE_PARTS = ("clone", "power_cycle", "snapshot", "maintenance")


_NOT_REACHED = "not reached: an earlier step of the run failed"


def _wait_stopped(platform: LibvirtPlatform, name: str, timeout: float) -> float:
    """Wait until the domain is shut off; the seconds it took."""
    started = time.monotonic()
    while _power(platform, name) != STOPPED:
        if time.monotonic() - started > timeout:
            raise PlatformError(f"still {_power(platform, name)} after {timeout:.0f} s", where=name)
        time.sleep(0.2)
    return time.monotonic() - started


def _running_elsewhere(platform: LibvirtPlatform, own: set[str]) -> list[str]:
    """Guests running on the host that are not this run's own throwaway guests."""
    return sorted(
        v.name
        for v in platform.vms()
        if v.power_state in (RUNNING, PAUSED, STOPPING) and v.name not in own
    )


def _live_migrate(
    src: LibvirtPlatform, dst: LibvirtPlatform, name: str, unsafe: bool
) -> dict[str, Any]:
    """Live-migrate ``name`` from ``src`` to ``dst``, honouring the destination's marker."""
    dom = src._domain(name)
    dst._refuse_if_not_placeable("migrate", name, src.vm(name).placement)
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    t0 = time.monotonic()
    src._call("migrate", f"{name} to {dst.endpoint}", dom.migrate, dst.conn, flags, None, None, 0)
    return {
        "host": dst.hostname(),
        "endpoint": dst.endpoint,
        "power_state": _power(dst, name),
        "on_source": src.vm_exists(name),
        "migration_s": round(time.monotonic() - t0, 3),
    }


@dataclass
class _Cycle:
    """What the parts of one guest cycle run share."""

    platform: LibvirtPlatform
    dest: LibvirtPlatform | None
    rec: _Recorder
    template: str
    name: str
    #: the diskless guest whose start on the marked host must be refused
    probe_vm: str
    run_id: str
    unsafe: bool
    boot_timeout: float
    stop_timeout: float
    #: the observation's value: one entry per part, filled in as the parts run
    value: dict[str, Any]
    #: the part running now: an error is that part's verdict
    current: str = "clone"
    #: the power cycle's problems so far; the hard power off at the end adds its own
    cycle_problems: list[str] = field(default_factory=list)


def run_guest_cycle(
    platform: LibvirtPlatform,
    destination: str | None,
    *,
    template: str,
    run_id: str,
    unsafe: bool = False,
    boot_timeout: float = BOOT_TIMEOUT_S,
    stop_timeout: float = 120.0,
) -> GuestOqResult:
    """Clone, power cycle, snapshot round trip and maintenance round trip on one guest.

    One throwaway guest serves all four parts, one after the other (the lab's VM budget
    allows one throwaway at a time):

    - ``clone``: the throwaway is cloned from the template (``vm.clone``): pass when its UUID
      and every NIC's MAC differ from the template's, the MAC the guest sees is the
      configured one, and its disk is a qcow2 overlay on the template's disk;
    - ``power_cycle``: start (agent answers), graceful shutdown through the agent, start
      (agent answers, new boot id), hard power off, start (agent answers, new boot id);
    - ``snapshot``: marker written through the agent, snapshot with memory (internal, the
      disk is qcow2), marker changed, revert, marker read back: the first value; the
      snapshot deleted;
    - ``maintenance`` (needs ``destination``): the guest is evacuated to the destination
      (live), the source host enters vqual's maintenance mode, migrating the guest back and
      starting a VM there are refused, the host leaves maintenance and the guest migrates
      back. Only this run's guests are moved: a source host running other guests gives
      ``not-executed`` naming them, and nothing is marked.

    Each part's value is ``{verdict, reason, ...}``; a part after a failed step is
    ``not-executed`` (not reached). Every step is an action with state before and after.
    """
    name = throwaway_name(run_id, "cyc")
    rec = _Recorder(name)
    value: dict[str, Any] = {
        "vm": name,
        "template": template,
        "source": platform.endpoint,
        "destination": redact_endpoint(destination) if destination else None,
        **{p: {"verdict": "not-executed", "reason": _NOT_REACHED} for p in CYCLE_PARTS},
    }
    not_executed = _cannot_run_guests(platform, "guest power cycle, snapshot and maintenance")
    if not_executed is not None:
        for part in CYCLE_PARTS:
            value[part] = {"verdict": "not-executed", "reason": not_executed}
        return GuestOqResult(value=value, not_executed=not_executed)
    _require_template(platform, template)
    # Connect before anything is made: an unreachable destination is a platform error.
    dest = LibvirtPlatform(destination, state_dir=platform._state_dir) if destination else None
    cycle = _Cycle(
        platform=platform,
        dest=dest,
        rec=rec,
        template=template,
        name=name,
        probe_vm=throwaway_name(run_id, "mnt"),
        run_id=run_id,
        unsafe=unsafe,
        boot_timeout=boot_timeout,
        stop_timeout=stop_timeout,
        value=value,
    )
    try:
        _run_cycle_parts(cycle)
    except NotSupported as exc:
        value[cycle.current] = {"verdict": "not-executed", "reason": exc.one_line()}
    except PlatformError as exc:
        value[cycle.current] = {
            **value[cycle.current],
            "verdict": "fail",
            "reason": rec.reason(exc),
        }
    finally:
        _end_cycle(cycle)
    failed = [p for p in CYCLE_PARTS if value[p]["verdict"] == "fail"]
    value["verdict"] = "fail" if failed else "pass"
    value["reason"] = "; ".join(f"{p}: {value[p]['reason']}" for p in failed) or None
    return GuestOqResult(value=value, actions=rec.actions, not_executed=None)


def _end_cycle(cycle: _Cycle) -> None:
    """Out of maintenance if this run marked the host; the run's guests removed."""
    platform, dest = cycle.platform, cycle.dest
    # Never leave this run's marker behind: a host left marked refuses every VM.
    if _marked_by(platform, cycle.run_id):
        try:
            platform.exit_maintenance()
        except PlatformError as exc:
            cycle.value["maintenance"]["reason"] = f"left in maintenance: {exc.one_line()}"
    where = [platform] + ([dest] if dest is not None else [])
    cycle.value["cleanup"] = _cleanup_action(cycle.rec, where, [cycle.probe_vm, cycle.name])
    if dest is not None:
        dest.close()


def _run_cycle_parts(cycle: _Cycle) -> None:
    """The parts in order; ``cycle.current`` names the one running, for its verdict."""
    cycle.current = "clone"
    boot1 = _cycle_clone(cycle)
    cycle.current = "power_cycle"
    agent, boot2 = _cycle_restart(cycle, boot1)
    cycle.current = "snapshot"
    _cycle_snapshot(cycle, agent, boot2["boot_id"])
    cycle.current = "maintenance"
    _cycle_maintenance(cycle, boot2["boot_id"])
    # The power cycle's last step: a hard power off where the guest runs now.
    cycle.current = "power_cycle"
    _cycle_power_off(cycle)


def _cycle_clone(cycle: _Cycle) -> dict[str, Any]:
    """Clone and first start; the ``clone`` part judged. The start's ``vm.start`` after."""
    platform, rec = cycle.platform, cycle.rec
    _clone(platform, rec, cycle.template, cycle.name, cycle.run_id, "cyc")
    clone = rec.actions[-1]
    agent, boot1 = _boot(platform, rec, cycle.name, cycle.boot_timeout)
    seen = _guest_macs(agent)
    problems = []
    if clone["after"]["uuid"] == clone["before"]["template_uuid"]:
        problems.append("clone has the template's UUID")
    shared = sorted(set(clone["after"]["macs"]) & set(clone["before"]["template_macs"]))
    if shared:
        problems.append(f"clone shares MAC {', '.join(shared)} with the template")
    if not set(clone["after"]["macs"]) <= set(seen):
        problems.append(f"guest sees MACs {seen}, configured {clone['after']['macs']}")
    if clone["after"]["backing"] != clone["before"]["template_disk"]:
        problems.append(f"overlay backing file is {clone['after']['backing']}")
    cycle.value["clone"] = {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "template_uuid": clone["before"]["template_uuid"],
        "uuid": clone["after"]["uuid"],
        "template_macs": clone["before"]["template_macs"],
        "macs": clone["after"]["macs"],
        "macs_in_guest": seen,
        "disk": clone["after"]["disk"],
        "backing": clone["after"]["backing"],
    }
    return boot1


def _cycle_restart(cycle: _Cycle, boot1: dict[str, Any]) -> tuple[Agent, dict[str, Any]]:
    """Graceful shutdown and start: the ``power_cycle`` part so far; the agent, start after."""
    rec = cycle.rec
    rec.step(
        "vm.shutdown_graceful",
        {"power_state": RUNNING, "boot_id": boot1["boot_id"], "how": "guest agent"},
        lambda: _shutdown_graceful(cycle),
    )
    agent, boot2 = _boot(cycle.platform, rec, cycle.name, cycle.boot_timeout)
    boots = [boot1["boot_id"], boot2["boot_id"]]
    stopped = rec.actions[-2]["after"]["power_state"]
    cycle.cycle_problems = [] if stopped == STOPPED else [f"guest is {stopped} after the shutdown"]
    if boots[0] == boots[1]:
        cycle.cycle_problems.append(f"boot id did not change on the restart: {boots[0]}")
    # The hard power off ends the run (after the maintenance round trip), which saves
    # a third boot; until then the part is not complete.
    cycle.value["power_cycle"] = {
        "verdict": "fail" if cycle.cycle_problems else "not-executed",
        "reason": "; ".join(cycle.cycle_problems) or "not reached: the hard power off",
        "boot_ids": boots,
        "agent_after_s": [boot1["agent_after_s"], boot2["agent_after_s"]],
        "graceful_stop_s": rec.actions[-2]["after"].get("stopped_after_s"),
    }
    return agent, boot2


def _shutdown_graceful(cycle: _Cycle) -> dict[str, Any]:
    """``vm.shutdown_graceful``: shut down through the guest agent, waited for."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    platform._call("shut down vm", name, dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
    waited = _wait_stopped(platform, name, cycle.stop_timeout)
    return {"power_state": _power(platform, name), "stopped_after_s": round(waited, 1)}


def _cycle_snapshot(cycle: _Cycle, agent: Agent, boot_id: str) -> None:
    """Marker, snapshot with memory, marker changed, revert, marker read back, delete."""
    platform, rec, name, run_id = cycle.platform, cycle.rec, cycle.name, cycle.run_id
    first = f"vqual-oq {run_id} before-snapshot {os.urandom(8).hex()}"
    second = f"vqual-oq {run_id} after-snapshot {os.urandom(8).hex()}"
    snap_name = f"vqual-oq-{run_id}"
    rec.step(
        "guest.marker_write", {"marker_file": MARKER_FILE}, lambda: _write_marker(agent, first)
    )
    rec.step(
        "vm.snapshot_create",
        {"power_state": _power(platform, name), "snapshots": [], "disk_format": "qcow2"},
        lambda: _snapshot_create(cycle, snap_name),
    )
    rec.step("guest.marker_change", {"marker": first}, lambda: _write_marker(agent, second))
    reverted = rec.step(
        "vm.snapshot_revert",
        {"snapshot": snap_name, "marker": second},
        lambda: _snapshot_revert(cycle, snap_name),
    )
    reverted_agent = Agent(platform._domain(name))
    read_back: list[str] = []
    rec.step(
        "guest.marker_read",
        {"marker_file": MARKER_FILE},
        lambda: _read_marker(reverted_agent, read_back),
    )
    rec.step(
        "vm.snapshot_delete",
        {"snapshots": [snap_name]},
        lambda: _snapshot_delete(cycle, snap_name),
    )
    problems = []
    if read_back[0] != first:
        problems.append(f"marker read back {read_back[0]!r}, written before the snapshot {first!r}")
    if reverted["power_state"] != RUNNING:
        problems.append(f"guest is {reverted['power_state']} after the revert")
    if reverted["boot_id"] != boot_id:
        problems.append("boot id changed: the revert booted the guest instead of restoring memory")
    if rec.actions[-1]["after"]["snapshots"]:
        problems.append("snapshot still listed after delete")
    cycle.value["snapshot"] = {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "marker_written": first,
        "marker_changed_to": second,
        "marker_read": read_back[0],
        "memory": True,
    }


def _snapshot_create(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_create``: an internal snapshot with memory; what libvirt lists after."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    xml = (
        f"<domainsnapshot><name>{snap_name}</name><description>vqual OQ snapshot round "
        f"trip, run {cycle.run_id}</description><memory snapshot='internal'/>"
        "</domainsnapshot>"
    )
    snap = platform._call("snapshot", name, dom.snapshotCreateXML, xml, 0)
    root = ET.fromstring(snap.getXMLDesc(0))
    memory = root.find("memory")
    return {
        "snapshot": snap_name,
        "state": root.findtext("state"),
        "memory": memory.get("snapshot") if memory is not None else None,
        "snapshots": [s.getName() for s in dom.listAllSnapshots(0)],
    }


def _snapshot_revert(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_revert``: reverted, the agent answering; state and boot id after."""
    platform, name = cycle.platform, cycle.name
    dom = platform._domain(name)
    snap = platform._call("find snapshot", snap_name, dom.snapshotLookupByName, snap_name, 0)
    platform._call("revert", f"{name} to {snap_name}", dom.revertToSnapshot, snap, 0)
    waited = Agent(dom).wait(cycle.boot_timeout)
    return {
        "power_state": _power(platform, name),
        "agent_after_s": round(waited, 1),
        "boot_id": _boot_id(Agent(dom)),
    }


def _snapshot_delete(cycle: _Cycle, snap_name: str) -> dict[str, Any]:
    """``vm.snapshot_delete``: the snapshot deleted; the snapshots listed after."""
    platform = cycle.platform
    dom = platform._domain(cycle.name)
    snap = platform._call("find snapshot", snap_name, dom.snapshotLookupByName, snap_name, 0)
    platform._call("delete snapshot", snap_name, snap.delete, 0)
    return {"snapshots": [s.getName() for s in dom.listAllSnapshots(0)]}


def _cycle_maintenance(cycle: _Cycle, boot_id: str) -> None:
    """Evacuate and run the maintenance round trip, or say why it is not executed."""
    platform, dest, name = cycle.platform, cycle.dest, cycle.name
    if dest is None:
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": "no destination host configured for this host "
            "(vqual_libvirt_oq.destination): nowhere to evacuate to",
        }
        return
    if platform.maintenance_marker().exists():
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": f"host {platform.hostname()} is already in maintenance "
            f"({platform.maintenance_marker()}): not this run's to change",
        }
        return
    src_host = platform.hostname()
    evacuated = cycle.rec.step(
        "vm.evacuate",
        {
            "host": src_host,
            "endpoint": platform.endpoint,
            "power_state": RUNNING,
            "boot_id": boot_id,
        },
        lambda: _live_migrate(platform, dest, name, cycle.unsafe),
    )
    others = _running_elsewhere(platform, {name})
    if others:
        cycle.value["maintenance"] = {
            "verdict": "not-executed",
            "reason": f"host {src_host} still runs guests this OQ may not move: "
            f"{', '.join(others)} (it evacuates only its own throwaway guests)",
            "evacuated": evacuated["host"],
        }
    else:
        cycle.value["maintenance"] = _maintenance_round_trip(cycle, dest, boot_id)


def _cycle_power_off(cycle: _Cycle) -> None:
    """Hard power off where the guest runs now; the ``power_cycle`` part judged."""
    platform, dest, name = cycle.platform, cycle.dest, cycle.name
    here = platform if platform.vm_exists(name) or dest is None else dest

    def power_off() -> dict[str, Any]:
        here._call("power off vm", name, here._domain(name).destroy)
        return {"power_state": _power(here, name), "host": here.hostname()}

    off = cycle.rec.step(
        "vm.power_off_hard",
        {"power_state": _power(here, name), "host": here.hostname()},
        power_off,
    )
    if off["power_state"] != STOPPED:
        cycle.cycle_problems.append(f"guest is {off['power_state']} after the hard power off")
    cycle.value["power_cycle"].update(
        {
            "verdict": "fail" if cycle.cycle_problems else "pass",
            "reason": "; ".join(cycle.cycle_problems) or None,
        }
    )


def _marked_by(platform: LibvirtPlatform, run_id: str) -> bool:
    """Whether the host's maintenance marker was written by this run."""
    try:
        body = json.loads(platform.maintenance_marker().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and body.get("run_id") == run_id


def _guest_macs(agent: Agent) -> list[str]:
    """MACs of the guest's NICs as the guest sees them (``guest-network-get-interfaces``)."""
    found = agent.command("guest-network-get-interfaces") or []
    return sorted(
        str(i.get("hardware-address", "")).lower()
        for i in found
        if i.get("name") != "lo" and i.get("hardware-address")
    )


def _maintenance_round_trip(cycle: _Cycle, dest: LibvirtPlatform, boot_id: str) -> dict[str, Any]:
    """Enter maintenance on the (evacuated) source, show VMs refused there, leave, return.

    Every state is read back from the platform: the host's maintenance state, where the
    guest runs, whether the VM that was refused is still stopped.
    """
    platform, rec, name, probe_vm = cycle.platform, cycle.rec, cycle.name, cycle.probe_vm
    host = platform.hostname()
    marker = platform.maintenance_marker()

    def enter() -> dict[str, Any]:
        facts = platform.enter_maintenance(run_id=cycle.run_id)
        return {
            "in_maintenance": facts.in_maintenance,
            "marker": str(marker),
            "running": _running_elsewhere(platform, set()),
        }

    rec.step(
        "host.enter_maintenance", {"host": host, "in_maintenance": False, "running": []}, enter
    )
    moved = rec.step(
        "vm.migrate_onto_maintenance_host",
        {"vm": name, "on_destination": RUNNING, "host": host, "in_maintenance": True},
        lambda: _migrate_onto_marked_host(cycle, dest),
    )
    started = rec.step(
        "vm.start_on_maintenance_host",
        {"vm": probe_vm, "power_state": STOPPED, "host": host, "in_maintenance": True},
        lambda: _start_on_marked_host(cycle, dest),
    )
    for path in _remove(platform, probe_vm):
        raise PlatformError(f"file of {probe_vm} left: {path}", where=platform.endpoint)

    def leave() -> dict[str, Any]:
        facts = platform.exit_maintenance()
        return {"in_maintenance": facts.in_maintenance, "marker_exists": marker.exists()}

    left = rec.step("host.exit_maintenance", {"host": host, "in_maintenance": True}, leave)
    back = rec.step(
        "vm.migrate_back",
        {"host": dest.hostname(), "endpoint": dest.endpoint, "power_state": RUNNING},
        lambda: _live_migrate(dest, platform, name, cycle.unsafe),
    )
    back["boot_id"] = _boot_id(Agent(platform._domain(name)))
    entered = next(a for a in rec.actions if a["name"] == "host.enter_maintenance")
    evacuated = next(a for a in rec.actions if a["name"] == "vm.evacuate")
    problems = []
    if evacuated["after"]["power_state"] != RUNNING or evacuated["after"]["on_source"]:
        problems.append("evacuation: guest not running on the destination only")
    if not entered["after"]["in_maintenance"]:
        problems.append("host does not report maintenance after entering it")
    if not moved["refused"] or moved["on_host"] != "absent":
        problems.append(f"migration onto the marked host not refused ({moved['reason']})")
    if not started["refused"] or started["power_state"] != STOPPED:
        problems.append(f"start on the marked host not refused ({started['reason']})")
    if left["in_maintenance"] or left["marker_exists"]:
        problems.append("host still in maintenance after leaving it")
    if back["power_state"] != RUNNING or back["on_source"] or back["boot_id"] != boot_id:
        problems.append("guest did not migrate back live after maintenance")
    return {
        "verdict": "fail" if problems else "pass",
        "reason": "; ".join(problems) or None,
        "host": host,
        "evacuated_to": evacuated["after"]["host"],
        "migrate_refused": moved["reason"],
        "start_refused": started["reason"],
        "returned": back["host"],
    }


def _migrate_onto_marked_host(cycle: _Cycle, dest: LibvirtPlatform) -> dict[str, Any]:
    """``vm.migrate_onto_maintenance_host``: the migration back tried; whether refused."""
    platform, name = cycle.platform, cycle.name
    refusal: str | None = None
    try:
        _live_migrate(dest, platform, name, cycle.unsafe)
    except PlatformError as exc:
        refusal = exc.one_line()
    return {
        "refused": "maintenance" in (refusal or ""),
        "reason": refusal,
        "on_destination": _power(dest, name),
        "on_host": _power(platform, name),
    }


def _start_on_marked_host(cycle: _Cycle, dest: LibvirtPlatform) -> dict[str, Any]:
    """``vm.start_on_maintenance_host``: a VM start tried on the host; whether refused."""
    platform, probe_vm = cycle.platform, cycle.probe_vm
    # A diskless copy of the guest, defined (tagged) on the marked host: if the refusal
    # failed it would boot nothing, and the cleanup removes it either way.
    root = ET.fromstring(dest.vm_xml(cycle.name, inactive=True))
    name_el = root.find("name")
    assert name_el is not None
    name_el.text = probe_vm
    for element in root.findall("uuid"):
        root.remove(element)
    devices = root.find("devices")
    if devices is not None:
        for disk in devices.findall("disk"):
            devices.remove(disk)
    xml = with_tag(ET.tostring(root, "unicode"), ThrowawayTag(cycle.run_id, "mnt", utc_stamp()))
    platform._call("define vm", probe_vm, platform.conn.defineXML, xml)
    refusal: str | None = None
    try:
        platform.power_on(probe_vm)
    except PlatformError as exc:
        refusal = exc.one_line()
    state = _power(platform, probe_vm)
    if state == RUNNING:
        platform._call("power off vm", probe_vm, platform._domain(probe_vm).destroy)
    return {
        "refused": "maintenance" in (refusal or ""),
        "reason": refusal,
        "power_state": state,
    }
