"""Live migration of a booted throwaway guest under a heartbeat (``oq_guest_migrate``).

The guest, its tag and its agent are ``guest_oq``'s; the heartbeat and the two figures taken
from it (the largest gap by the guest's clock, the time the guest did not see at all) are
described there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libvirt

from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import RUNNING, redact_endpoint
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_oq import (
    _HEARTBEAT_PY,
    _LOAD_PY,
    AGENT_STALL_S,
    BOOT_TIMEOUT_S,
    HEARTBEAT_FILE,
    HEARTBEAT_PERIOD_S,
    HEARTBEAT_SCRIPT,
    HEARTBEAT_START_S,
    LOAD_SCRIPT,
    LOAD_START_S,
    Agent,
    AgentNotAnswering,
    Beat,
    GuestOqResult,
    _boot_id,
    _cannot_run_guests,
    _cleanup_action,
    _clone_and_boot,
    _power,
    _Recorder,
    _require_template,
    frozen_s,
    max_gap_s,
    parse_heartbeat,
    throwaway_name,
)


@dataclass
class _Migration:
    """What the steps of one migration heartbeat run share."""

    platform: LibvirtPlatform
    dest: LibvirtPlatform
    rec: _Recorder
    name: str
    dest_endpoint: str
    settle_s: float
    #: the observation's value; the steps add their measurements to it as they take them
    value: dict[str, Any]


@dataclass
class _HeartbeatRead:
    """One read of the heartbeat: the host's clock at the read, the beats, the boot id."""

    host: float = 0.0
    beats: list[Beat] = field(default_factory=list)
    boot: str = ""


def run_migration_heartbeat(
    platform: LibvirtPlatform,
    destination: str,
    *,
    template: str,
    run_id: str,
    unsafe: bool = False,
    boot_timeout: float = BOOT_TIMEOUT_S,
    settle_s: float = 2.0,
    load_mib: int = 0,
) -> GuestOqResult:
    """Live-migrate a throwaway guest to ``destination`` and measure the interruption.

    Args:
        platform: session on the source host.
        destination: libvirt URI of the destination host.
        template: defined domain whose disk the throwaway overlays (read only).
        run_id: the run's id; names and tags the throwaway guest.
        unsafe: pass ``VIR_MIGRATE_UNSAFE`` (storage shared in a way libvirt does not
            recognise, e.g. a bind mount); a site decision, off by default.
        boot_timeout: seconds to wait for the guest agent after start.
        settle_s: heartbeat seconds recorded before and after the migration.
        load_mib: if > 0, a process in the guest writes to every page of this many MiB
            over and over during the migration (OQ-04 "under load": pages keep getting
            dirty while memory is copied).
    """
    name = throwaway_name(run_id, "mig")
    rec = _Recorder(name)
    dest_endpoint = redact_endpoint(destination)
    value: dict[str, Any] = {
        "vm": name,
        "source": platform.endpoint,
        "destination": dest_endpoint,
        "verdict": "fail",
        "reason": None,
    }
    not_executed = _cannot_run_guests(platform, "migration heartbeat")
    if not_executed is not None:
        value.update({"verdict": "not-executed", "reason": not_executed})
        return GuestOqResult(value=value, not_executed=not_executed)
    # Before anything is made: a missing template or an unreachable destination is a
    # platform error of the whole test (error verdicts), raised to the probe.
    _require_template(platform, template)
    dest = LibvirtPlatform(destination, state_dir=platform._state_dir)
    run = _Migration(platform, dest, rec, name, dest_endpoint, settle_s, value)
    try:
        agent, _tag = _clone_and_boot(platform, rec, template, name, run_id, "mig", boot_timeout)
        value["agent_after_boot_s"] = rec.actions[-1]["after"]["agent_after_s"]
        _migrate_under_heartbeat(run, agent, unsafe, load_mib)
    except NotSupported as exc:
        not_executed = exc.one_line()
        value.update({"verdict": "not-executed", "reason": not_executed})
    except PlatformError as exc:
        value.update({"verdict": "fail", "reason": rec.reason(exc)})
    finally:
        value["cleanup"] = _cleanup_action(rec, [platform, dest], [name])
        dest.close()
    return GuestOqResult(value=value, actions=rec.actions, not_executed=not_executed)


def _migrate_under_heartbeat(run: _Migration, agent: Agent, unsafe: bool, load_mib: int) -> None:
    """Heartbeat (and load) in the booted guest, migrate, read the heartbeat on both sides."""
    rec, value = run.rec, run.value
    rec.step("guest.heartbeat_start", {"heartbeat": None}, lambda: _start_heartbeat(run, agent))
    if load_mib > 0:
        rec.step("guest.load_start", {"load": None}, lambda: _start_load(run, agent, load_mib))
    before = _HeartbeatRead()
    rec.step(
        "guest.heartbeat_read_before",
        {"heartbeat": HEARTBEAT_FILE},
        lambda: _read_heartbeat_before(run, agent, before),
    )
    last_before = before.beats[-1]
    # The same guest's largest gap in the settle time just before the migration (under
    # the same load): what the heartbeat shows without one, to read the interruption
    # against.
    baseline = max_gap_s(before.beats, since_ns=last_before.mono_ns - int(run.settle_s * 1e9))
    value["baseline_gap_s"] = round(baseline, 3)
    src_host = run.platform.hostname()
    after = rec.step(
        "vm.migrate_live",
        {"host": src_host, "endpoint": run.platform.endpoint, "power_state": RUNNING},
        lambda: _migrate_guest(run, unsafe),
    )
    dest_agent = Agent(run.dest._domain(run.name))
    read = _HeartbeatRead()
    rec.step(
        "guest.heartbeat_read_after",
        {"heartbeat": HEARTBEAT_FILE},
        lambda: _read_heartbeat_after(run, dest_agent, read),
    )
    beats = read.beats
    window = [b for b in beats if b.mono_ns >= last_before.mono_ns]
    gap = max_gap_s(beats, since_ns=last_before.mono_ns)
    frozen = frozen_s(before.host, read.host, last_before.mono_ns, beats[-1].mono_ns)
    interruption = max(gap, frozen)
    problems = []
    if after["power_state"] != RUNNING:
        problems.append(f"guest is {after['power_state']} on the destination")
    if after["on_source"]:
        problems.append("guest is still defined on the source")
    if read.boot != before.boot:
        problems.append("guest rebooted (boot id changed): not a live migration")
    if not window or window[-1].counter <= last_before.counter:
        problems.append("heartbeat did not advance after the migration")
    value.update(
        {
            "verdict": "fail" if problems else "pass",
            "reason": "; ".join(problems) or None,
            "interruption_s": round(interruption, 3),
            "max_gap_s": round(gap, 3),
            "guest_frozen_s": round(frozen, 3),
            "baseline_gap_s": round(baseline, 3),
            "migration_s": value["migration_s"],
            "beats_in_window": len(window),
            "same_boot": read.boot == before.boot,
            "resolution_s": HEARTBEAT_PERIOD_S,
            "load_mib": load_mib,
        }
    )


def _start_heartbeat(run: _Migration, agent: Agent) -> dict[str, Any]:
    """``guest.heartbeat_start``: the script started, and settle_s of beats written."""
    agent.write(HEARTBEAT_SCRIPT, _HEARTBEAT_PY.encode())
    code, _out = agent.run(
        ["/bin/sh", "-c", f"python3 {HEARTBEAT_SCRIPT} </dev/null >/dev/null 2>&1 &"]
    )
    if code != 0:
        raise PlatformError(f"heartbeat did not start (exit {code})", where=run.name)
    # Five beats, then settle_s of them by the guest's own clock: the window the
    # baseline gap is read from (host time would give a starved guest fewer beats).
    beats, took = _poll_beats(
        agent,
        "heartbeat wrote fewer than 5 beats",
        HEARTBEAT_START_S,
        run.name,
        lambda b: len(b) >= 5,
    )
    first = beats[0].mono_ns
    _poll_beats(
        agent,
        f"heartbeat did not cover {run.settle_s:g} s",
        HEARTBEAT_START_S,
        run.name,
        lambda b: b[-1].mono_ns - first >= run.settle_s * 1e9,
    )
    run.value["heartbeat_start_s"] = round(took, 1)
    return {
        "heartbeat": HEARTBEAT_FILE,
        "period_s": HEARTBEAT_PERIOD_S,
        "first_beats_after_s": round(took, 1),
    }


def _start_load(run: _Migration, agent: Agent, load_mib: int) -> dict[str, Any]:
    """``guest.load_start``: the memory load running, and settle_s of beats under it."""
    name, settle_s = run.name, run.settle_s
    agent.write(LOAD_SCRIPT, _LOAD_PY.replace("MIB", str(int(load_mib))).encode())
    code, _out = agent.run(["/bin/sh", "-c", f"python3 {LOAD_SCRIPT} </dev/null >/dev/null 2>&1 &"])
    if code != 0:
        raise PlatformError(f"memory load did not start (exit {code})", where=name)
    t0 = time.monotonic()
    while True:
        code, out = agent.run(["/bin/sh", "-c", f"pgrep -f {LOAD_SCRIPT} || true"])
        if out.strip():
            break
        if time.monotonic() - t0 > LOAD_START_S:
            raise PlatformError(
                f"memory load process not running after {LOAD_START_S:.0f} s",
                where=name,
            )
        time.sleep(0.2)
    running_after = time.monotonic() - t0
    # settle_s of heartbeat under the load (guest clock): the baseline window.
    since = _poll_beats(agent, "heartbeat stopped", AGENT_STALL_S, name, lambda b: True)[0][
        -1
    ].mono_ns
    _poll_beats(
        agent,
        f"heartbeat did not cover {settle_s:g} s under the load",
        AGENT_STALL_S,
        name,
        lambda b: b[-1].mono_ns - since >= settle_s * 1e9,
    )
    run.value["load_running_after_s"] = round(running_after, 1)
    return {
        "load": "dirtying memory",
        "load_mib": load_mib,
        "running_after_s": round(running_after, 1),
    }


def _read_heartbeat_before(run: _Migration, agent: Agent, into: _HeartbeatRead) -> dict[str, Any]:
    """``guest.heartbeat_read_before``: the beats and boot id before the migration."""
    # Reads only, so they may wait for an agent the load keeps busy.
    data, waited = agent.read_when_answering(HEARTBEAT_FILE)
    into.host = time.monotonic()
    into.beats = parse_heartbeat(data)
    into.boot = _boot_id(agent)
    if not into.beats:
        raise PlatformError("no heartbeat read before the migration", where=run.name)
    return {
        "beats": len(into.beats),
        "last_counter": into.beats[-1].counter,
        "boot_id": into.boot,
        "agent_waited_s": round(waited, 1),
    }


def _migrate_guest(run: _Migration, unsafe: bool) -> dict[str, Any]:
    """``vm.migrate_live``: the guest moved to the destination; where it runs after."""
    platform, dest, name = run.platform, run.dest, run.name
    flags = (
        libvirt.VIR_MIGRATE_LIVE
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    if unsafe:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    dom = platform._domain(name)
    t0 = time.monotonic()
    platform._call(
        "migrate",
        f"{name} to {run.dest_endpoint}",
        dom.migrate,
        dest.conn,
        flags,
        None,
        None,
        0,
    )
    run.value["migration_s"] = round(time.monotonic() - t0, 3)
    return {
        "host": dest.hostname(),
        "endpoint": run.dest_endpoint,
        "power_state": _power(dest, name),
        "on_source": platform.vm_exists(name),
        "migration_s": run.value["migration_s"],
    }


def _read_heartbeat_after(
    run: _Migration, dest_agent: Agent, into: _HeartbeatRead
) -> dict[str, Any]:
    """``guest.heartbeat_read_after``: settle_s of beats on the destination, and the boot id."""
    name, settle_s = run.name, run.settle_s
    # The agent may not answer for a while after the switch-over on a busy machine:
    # wait for it (bounded), then for settle_s of heartbeat on the destination by the
    # guest's clock, so the window after the migration is as long as the one before.
    waited = dest_agent.wait(AGENT_STALL_S)
    run.value["agent_after_migration_s"] = round(waited, 1)
    first, more = dest_agent.read_when_answering(HEARTBEAT_FILE)
    seen = parse_heartbeat(first)
    if not seen:
        raise PlatformError("no heartbeat read after the migration", where=name)
    since = seen[-1].mono_ns
    got, _took = _poll_beats(
        dest_agent,
        f"heartbeat did not advance {settle_s:g} s after the migration",
        AGENT_STALL_S,
        name,
        lambda b: b[-1].mono_ns - since >= settle_s * 1e9,
    )
    into.host = time.monotonic()
    into.beats = got
    into.boot = _boot_id(dest_agent)
    return {
        "beats": len(got),
        "last_counter": got[-1].counter,
        "boot_id": into.boot,
        "agent_after_s": round(waited, 1),
        "agent_waited_s": round(more, 1),
    }


def _poll_beats(
    agent: Agent,
    what: str,
    bound: float,
    where: str,
    done: Callable[[list[Beat]], bool],
) -> tuple[list[Beat], float]:
    """Read the heartbeat until ``done(beats)`` holds (beats never empty); the beats and the
    seconds it took. A file not there yet reads as no beats; an agent that stops answering
    is waited for, all within ``bound`` seconds.

    Raises:
        PlatformError: ``what`` (and the beats seen) when ``bound`` passed first.
    """
    started = time.monotonic()
    beats: list[Beat] = []
    while True:
        left = bound - (time.monotonic() - started)
        try:
            data, _waited = agent.read_when_answering(HEARTBEAT_FILE, max(left, 0.0))
            beats = parse_heartbeat(data)
        except AgentNotAnswering:
            raise  # read_when_answering waited the bound out already
        except PlatformError:
            if time.monotonic() - started > bound:
                raise
            beats = []  # the script has not created its file yet
        if beats and done(beats):
            return beats, time.monotonic() - started
        if time.monotonic() - started > bound:
            raise PlatformError(
                f"{what} within {bound:.0f} s ({len(beats)} beats read)", where=where
            )
        time.sleep(HEARTBEAT_PERIOD_S * 2)


def _wait_job(dom: libvirt.virDomain, timeout: float) -> dict[str, Any]:
    """Wait for the domain's backup job to end; its completed-job statistics."""
    deadline = time.monotonic() + timeout
    while dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
        if time.monotonic() > deadline:
            dom.abortJob()
            raise PlatformError(f"backup still running after {timeout:.0f} s", where=dom.name())
        time.sleep(0.2)
    stats: dict[str, Any] = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return stats
