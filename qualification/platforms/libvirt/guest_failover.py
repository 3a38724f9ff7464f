"""Failover OQ (URS-OPS-03, ``oq_guest_failover``): a host of an HA cluster fails and the
guest its HA stack manages runs again on another host, with its data.

The guest is the site's: a domain the HA stack (pacemaker's ``VirtualDomain``, or another)
keeps running, named with the host variable ``vqual_libvirt_oq.failover``::

    failover:
      domain: ha-test-vm               # the domain the HA stack manages
      peers: [qemu+tcp://kvm2/system]  # libvirt URIs of the other hosts it may run on
      fail_command: [...]              # fails one host ({host}, {address}); a power-off
      restore_command: [...]           # brings it back afterwards
      prepare_command: [...]           # optional: brings up or checks the HA stack first
      versions_command: [...]          # optional: "name version" lines of the stack, per host
      bound_s: 240                     # how long the guest may take to answer again

The commands run on the controller as argv lists (no shell); ``{host}`` is the host's name
as libvirt reports it, ``{address}`` the host part of its URI. They are recorded in the
evidence as written, so they must not carry secrets (read a password from a file).

What the run does: finds the host running the domain, waits for its guest agent, writes a
random marker into the guest and syncs it to disk, records the stack's versions, fails that
host (``fail_command``), measures until the domain runs on another host (``running_s``) and
its agent answers (``restart_s``), reads the marker back there, and restores the failed
host. The verdict is ``pass`` only when the guest answered on another host within
``bound_s`` and the marker read back is the one written (``judge`` of
:mod:`qualification.checks.failover`, which the check applies again to the recorded values). A step that could
not be taken (the prepare, fail command or the guest before the failure) makes the run
``not-executed`` with that attempt measured (command, exit, stderr tail, seconds): never a
pass.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import libvirt

from qualification.checks.failover import BOUND_S, judge
from qualification.errors import PlatformError
from qualification.platforms.base import BadArgs, redact_endpoint
from qualification.platforms.libvirt.adapter import LibvirtPlatform
from qualification.platforms.libvirt.guest_oq import (
    AGENT_STALL_S,
    Agent,
    AgentNotAnswering,
    GuestOqResult,
)
from qualification.platforms.oq import utc_stamp

MARKER_FILE = "/root/vqual-failover-marker"
#: A site command (prepare, fail, restore, versions) that has not ended after this is
#: killed and counts as failed: the lab's prepare (install and start the stack) took
#: 28-58 s measured (docs/ha.md); 600 s is over 10x that.
COMMAND_S = 600.0
_TAIL_LINES = 5


@dataclass(frozen=True)
class FailoverConfig:
    """``vqual_libvirt_oq.failover`` as the run uses it."""

    domain: str
    peers: tuple[str, ...]
    fail_command: tuple[str, ...]
    restore_command: tuple[str, ...]
    prepare_command: tuple[str, ...] = ()
    versions_command: tuple[str, ...] = ()
    bound_s: float = BOUND_S

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> FailoverConfig:
        """Raises BadArgs naming the field that is missing or wrong."""
        where = "oq_guest_failover: vqual_libvirt_oq.failover"

        def argv(name: str, required: bool) -> tuple[str, ...]:
            value = args.get(name)
            if value is None and not required:
                return ()
            if not isinstance(value, list) or not value or not all(
                isinstance(a, str) for a in value
            ):
                raise BadArgs(f"{where}.{name} must be a non-empty list of strings (an argv)")
            return tuple(value)

        domain = args.get("domain")
        if not isinstance(domain, str) or not domain:
            raise BadArgs(f"{where}.domain must name the domain the HA stack manages")
        peers = args.get("peers")
        if not isinstance(peers, list) or not peers or not all(isinstance(p, str) for p in peers):
            raise BadArgs(f"{where}.peers must list the libvirt URIs of the other hosts")
        bound = args.get("bound_s", BOUND_S)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound <= 0:
            raise BadArgs(f"{where}.bound_s must be a positive number of seconds")
        return cls(
            domain=domain,
            peers=tuple(peers),
            fail_command=argv("fail_command", True),
            restore_command=argv("restore_command", True),
            prepare_command=argv("prepare_command", False),
            versions_command=argv("versions_command", False),
            bound_s=float(bound),
        )


def expand(argv: Sequence[str], host: str, address: str) -> list[str]:
    """``argv`` with ``{host}`` and ``{address}`` filled in (nothing else is a placeholder)."""
    return [a.replace("{host}", host).replace("{address}", address) for a in argv]


def attempt(argv: Sequence[str], timeout: float = COMMAND_S) -> dict[str, Any]:
    """Run one site command and measure it: command, exit, stdout and stderr tails, seconds.

    A command that cannot be started or does not end within ``timeout`` has exit None and
    says why in ``stderr_tail``.
    """
    started = time.monotonic()
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False)
        code: int | None = proc.returncode
        out, err = proc.stdout, proc.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        code, out, err = None, "", " ".join(str(exc).split())
    return {
        "command": list(argv),
        "exit": code,
        "stdout_tail": out.strip().splitlines()[-_TAIL_LINES:],
        "stderr_tail": err.strip().splitlines()[-_TAIL_LINES:],
        "seconds": round(time.monotonic() - started, 3),
    }


def attempt_reason(what: str, done: Mapping[str, Any]) -> str:
    """One line for a failed attempt: what, the exit and the last stderr line."""
    tail = done.get("stderr_tail") or done.get("stdout_tail") or ["no output"]
    code = done.get("exit")
    ended = f"exit {code}" if code is not None else "did not run"
    return f"{what} failed ({ended} after {done.get('seconds')} s): {tail[-1]}"


def parse_versions(text: str) -> dict[str, str]:
    """``name version`` (or ``name<TAB>version``) lines as a mapping; other lines skipped."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[0].split(":", 1)[0]] = parts[1]
    return found


# --- the run ------------------------------------------------------------------------------


class _Host:
    """One host of the HA cluster through its own libvirt connection."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.address = urllib.parse.urlsplit(uri).hostname or ""
        self.conn: libvirt.virConnect | None = None
        self.name = redact_endpoint(uri)

    def open(self) -> bool:
        try:
            self.conn = libvirt.open(self.uri)
            self.name = str(self.conn.getHostname())
        except libvirt.libvirtError:
            self.conn = None
        return self.conn is not None

    def running(self, domain: str) -> libvirt.virDomain | None:
        if self.conn is None and not self.open():
            return None
        assert self.conn is not None
        try:
            dom = self.conn.lookupByName(domain)
            return dom if dom.isActive() else None
        except libvirt.libvirtError:
            return None

    def versions(self) -> dict[str, str]:
        if self.conn is None:
            return {}
        try:
            return {"libvirt": _version(self.conn.getLibVersion()),
                    "qemu": _version(self.conn.getVersion())}
        except libvirt.libvirtError:
            return {}

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None


def _version(number: int) -> str:
    return f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}"


class _NotExecuted(Exception):
    def __init__(self, reason: str, done: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.done = dict(done or {})


def _locate(hosts: Sequence[_Host], domain: str, bound: float) -> tuple[_Host, Agent, float]:
    """The host running ``domain`` once its guest agent answers, and the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        for host in hosts:
            dom = host.running(domain)
            if dom is not None:
                agent = Agent(dom)
                try:
                    agent.wait(max(1.0, bound - (time.monotonic() - started)))
                except PlatformError as exc:
                    raise _NotExecuted(f"{domain} on {host.name}: {exc.one_line()}") from None
                return host, agent, time.monotonic() - started
        time.sleep(0.5)
    names = ", ".join(h.name for h in hosts)
    raise _NotExecuted(f"{domain} runs on none of {names} (waited {bound:.0f} s)")


def _wait_elsewhere(
    hosts: Sequence[_Host], failed: _Host, domain: str, t0: float, bound: float
) -> tuple[_Host | None, Agent | None, float | None, float | None]:
    """Poll the other hosts until ``domain`` runs on one and its agent answers."""
    running_s: float | None = None
    while time.monotonic() - t0 < bound:
        for host in hosts:
            if host is failed:
                continue
            dom = host.running(domain)
            if dom is None:
                continue
            if running_s is None:
                running_s = time.monotonic() - t0
            agent = Agent(dom)
            try:
                agent.command("guest-ping", timeout=5)
            except PlatformError:
                continue
            return host, agent, running_s, time.monotonic() - t0
        time.sleep(0.25)
    return None, None, running_s, None


def _marker(agent: Agent, run_id: str) -> str:
    """Write a random marker into the guest, sync it to its disk, read it back."""
    marker = f"vqual-failover {run_id} {os.urandom(8).hex()}"
    agent.write(MARKER_FILE, marker.encode())
    code, _ = agent.run(["/bin/sync"])
    if code != 0:
        raise PlatformError(f"sync in the guest exited {code}")
    if agent.read(MARKER_FILE).decode(errors="replace") != marker:
        raise PlatformError("the marker read back before the failure is not the one written")
    return marker


def _stack(cfg: FailoverConfig, hosts: Sequence[_Host]) -> dict[str, dict[str, str]]:
    """libvirt's and QEMU's versions per host, and what ``versions_command`` lists."""
    stack: dict[str, dict[str, str]] = {}
    for host in hosts:
        found = host.versions()
        if cfg.versions_command:
            argv = expand(cfg.versions_command, host.name, host.address)
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=120.0,
                                      check=False)
            except (OSError, subprocess.TimeoutExpired):
                proc = None
            if proc is not None and proc.returncode == 0:
                found.update(parse_versions(proc.stdout))
        stack[host.name] = found
    return stack


def run_failover(platform: LibvirtPlatform, args: Mapping[str, Any], run_id: str) -> GuestOqResult:
    """The failover OQ on the configured HA cluster (see the module's docstring)."""
    cfg = FailoverConfig.from_args(args)
    value: dict[str, Any] = {"domain": cfg.domain, "bound_s": cfg.bound_s,
                             "verdict": "not-executed", "reason": None}
    hosts = [_Host(u) for u in (platform.uri, *cfg.peers)]
    actions: list[dict[str, Any]] = []
    try:
        _failover(cfg, hosts, run_id, value, actions)
    except _NotExecuted as exc:
        value.update({"attempt_failed": True, "reason": str(exc)})
        if exc.done:
            value["attempt"] = exc.done
    except PlatformError as exc:
        value.update({"attempt_failed": True, "reason": exc.one_line()})
    finally:
        for host in hosts:
            host.close()
    verdict, reason = judge(value)
    value.update({"verdict": verdict, "reason": reason})
    return GuestOqResult(value=value, actions=actions,
                         not_executed=reason if verdict == "not-executed" else None)


def _action(name: str, target: str, started: str, before: dict[str, Any],
            after: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """One step as an ``action`` record: state before and after, ``pass`` without a reason."""
    return {"name": name, "target": target, "before": before, "after": after,
            "verdict": "pass" if reason is None else "fail", "reason": reason,
            "started": started, "finished": utc_stamp()}


def _failover(cfg: FailoverConfig, hosts: list[_Host], run_id: str,
              value: dict[str, Any], actions: list[dict[str, Any]]) -> None:
    if cfg.prepare_command:
        done = attempt(cfg.prepare_command)
        value["prepare"] = done
        if done["exit"] != 0:
            raise _NotExecuted(attempt_reason("the prepare command", done), done)
    source, agent, located_s = _locate(hosts, cfg.domain, cfg.bound_s)
    value.update({"located_s": round(located_s, 3), "failed_host": source.name})
    started = utc_stamp()
    value["marker_written"] = _marker(agent, run_id)
    actions.append(_action("guest.marker_write", cfg.domain, started, {"host": source.name},
                           {"marker": value["marker_written"], "synced": True}, None))
    value["stack"] = _stack(cfg, hosts)
    fail = expand(cfg.fail_command, source.name, source.address)
    started = utc_stamp()
    t0 = time.monotonic()
    done = attempt(fail)
    value["fail"] = done
    if done["exit"] != 0:
        raise _NotExecuted(attempt_reason("the fail command", done), done)
    actions.append(_action("host.fail", source.name, started, {"runs": cfg.domain},
                           {"exit": done["exit"], "seconds": done["seconds"]}, None))
    source.close()
    started = utc_stamp()
    where, new_agent, running_s, restart_s = _wait_elsewhere(
        hosts, source, cfg.domain, t0, cfg.bound_s
    )
    value.update({
        "restarted_on": where.name if where else None,
        "running_s": None if running_s is None else round(running_s, 3),
        "restart_s": None if restart_s is None else round(restart_s, 3),
    })
    actions.append(_action(
        "vm.restart_elsewhere", cfg.domain, started, {"host": source.name},
        {"host": value["restarted_on"], "running_s": value["running_s"],
         "restart_s": value["restart_s"]},
        None if where else f"not answering on another host within {cfg.bound_s:.0f} s"))
    if new_agent is not None:
        started = utc_stamp()
        try:
            data, _ = new_agent.read_when_answering(MARKER_FILE, AGENT_STALL_S)
            value["marker_read"] = data.decode(errors="replace")
        except (AgentNotAnswering, PlatformError) as exc:
            value["marker_read"] = None
            value["marker_error"] = exc.one_line()
        same = value["marker_read"] == value["marker_written"]
        actions.append(_action("guest.marker_read", cfg.domain, started,
                               {"host": value["restarted_on"]},
                               {"marker": value["marker_read"]},
                               None if same else "not the marker written before the failure"))
    started = utc_stamp()
    value["restore"] = attempt(expand(cfg.restore_command, source.name, source.address))
    restored = value["restore"]
    actions.append(_action(
        "host.restore", source.name, started, {"failed": True},
        {"exit": restored["exit"], "seconds": restored["seconds"]},
        None if restored["exit"] == 0 else attempt_reason("the restore command", restored)))
