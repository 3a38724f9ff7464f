"""The rolling patch's per-host steps as data (docs/rolling-patch.md).

:data:`STEP_TABLE` lists the steps in the order a host goes through them; each names its
action, its post-condition (read back from the platform before ``step.done`` is journaled) and
whether it runs again on resume when a crashed run had begun it (its post-condition cannot be
judged from the platform alone). The orchestrator walks the table; it journals and records
evidence, the steps only act and read.

:data:`STEPS_VERSION` is recorded in every journal's ``run.begin``; a resume refuses a journal
of another version, since the steps it recorded may mean something else. Change it with any
change to the table's order, to a step's meaning or to a ``rerun_on_resume`` flag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from qualification.errors import EXIT_FAILED, NotSupported, PlatformError, VqualError
from qualification.platforms.base import RUNNING, HypervisorPlatform, vm_summaries
from qualification.platforms.patching import PatchExecutor, target_mismatches
from qualification.rollout.change import RolloutChange
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.requalify import Requalifier, RequalifyContext
from qualification.timeutil import utc_now_text

_T = TypeVar("_T")

#: The version of :data:`STEP_TABLE` a journal records (``steps_version`` in ``run.begin``).
STEPS_VERSION = 1

#: Power states that hold a VM on its host (it must move before maintenance).
HELD = frozenset({"running", "paused", "stopping"})


class StepFailed(VqualError):
    """A step's operation failed or its post-condition did not hold (exit 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, host: str, step: str, reason: str) -> None:
        self.host = host
        self.step = step
        self.reason = " ".join(reason.split())
        super().__init__(f"{step} failed: {self.reason}", where=host)


@dataclass(frozen=True)
class HostWork:
    """What to do on one host, from the plan: moves (vm, destination) and VMs to stop."""

    host: str
    moves: tuple[tuple[str, str], ...] = ()
    stops: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "moves": [list(m) for m in self.moves], "stops": list(self.stops)}


class _AtTarget:
    pass


#: What ``recheck`` returns for a host already at the change's target (the host is skipped).
AT_TARGET = _AtTarget()


class StepContext:
    """What the steps act through and share within one run.

    Args:
        platform_factory: opens a session to the platform; called once for the run and once
            per migration worker thread (sessions are not shared between threads).
        read_retries: attempts for a read that fails with a platform error (writes never retry).

    Attributes:
        run_id: the run the steps belong to (the requalifier records it).
        last: the last state read per host, the next step's "before" (saves a read per step).
        stopped_at: stop-approved VMs of this run, with when they were stopped.
    """

    def __init__(
        self,
        platform_factory: Callable[[], HypervisorPlatform],
        executor: PatchExecutor,
        requalifier: Requalifier,
        change: RolloutChange,
        evidence: PatchEvidence | None,
        read_retries: int,
    ) -> None:
        self.platform_factory = platform_factory
        self.executor = executor
        self.requalifier = requalifier
        self.change = change
        self.evidence = evidence
        self.read_retries = read_retries
        self.run_id = ""
        self.last: dict[str, Any] = {}
        self.stopped_at: dict[str, float] = {}
        self._platform: HypervisorPlatform | None = None
        self._local = threading.local()
        self._worker_platforms: list[HypervisorPlatform] = []

    @property
    def platform(self) -> HypervisorPlatform:
        if self._platform is None:
            self._platform = self.platform_factory()
        return self._platform

    def worker_platform(self) -> HypervisorPlatform:
        found: HypervisorPlatform | None = getattr(self._local, "platform", None)
        if found is None:
            found = self.platform_factory()
            self._local.platform = found
            self._worker_platforms.append(found)
        return found

    def close(self) -> None:
        for p in [*self._worker_platforms, *([self._platform] if self._platform else [])]:
            try:
                p.close()
            except VqualError:
                pass
        self._worker_platforms.clear()
        self._platform = None
        close_executor = getattr(self.executor, "close", None)
        if callable(close_executor):
            close_executor()  # its session; it opens another if used again

    def read(self, what: str, fn: Callable[[], _T]) -> _T:
        """A read, retried on platform errors (never a write)."""
        last: PlatformError | None = None
        for attempt in range(max(self.read_retries, 1)):
            try:
                return fn()
            except NotSupported:
                raise
            except PlatformError as exc:
                last = exc
                time.sleep(min(0.2 * 2**attempt, 2.0))
        assert last is not None
        raise last

    def observe(self, host: str, *, vms: bool = True) -> dict[str, Any]:
        """The host's state as the platform reports it: maintenance and (``vms``) its VMs."""
        def read() -> dict[str, Any]:
            facts = {h.name: h for h in self.platform.hosts()}
            if host not in facts:
                raise PlatformError(f"host {host} is not listed by the platform")
            state: dict[str, Any] = {"in_maintenance": facts[host].in_maintenance}
            if vms:
                state.update(self.vms_on(host))
            return state
        state = self.read(f"state of {host}", read)
        self.last[host] = state
        return state

    def vms_on(self, host: str) -> dict[str, list[str]]:
        found = self.read(f"VMs of {host}", lambda: vm_summaries(self.platform))
        return {
            "running_vms": sorted(v.name for v in found if v.host == host
                                  and v.power_state in HELD),
            "stopped_vms": sorted(v.name for v in found if v.host == host
                                  and v.power_state not in HELD),
        }

    def requalify_context(self) -> RequalifyContext:
        return RequalifyContext(platform=self.platform, executor=self.executor, change=self.change,
                                run_id=self.run_id, risk=self.change.risk)

    def migrate(self, vm: str, dest: str, live: bool) -> float:
        """Move one VM on this thread's own platform session; the seconds it took."""
        platform = self.worker_platform()
        t0 = time.monotonic()
        platform.migrate_vm(vm, dest, live=live)
        return time.monotonic() - t0


# -- actions: each returns what it did (the evidence's detail) or raises StepFailed ----------


def recheck(ctx: StepContext, item: HostWork) -> Any:
    facts = {h.name: h for h in ctx.read("hosts", ctx.platform.hosts)}
    if item.host not in facts:
        raise StepFailed(item.host, "recheck", "the platform no longer lists the host")
    if facts[item.host].in_maintenance:
        raise StepFailed(item.host, "recheck", "the host is in maintenance already")
    installed = ctx.read("installed", lambda: ctx.executor.installed(item.host))
    if not target_mismatches(installed, ctx.change):
        return AT_TARGET
    out_of_service = [n for n, f in facts.items() if f.in_maintenance
                      and ctx.change.exclusion(n) is None]
    if out_of_service:
        raise StepFailed(item.host, "recheck",
                         f"another host is out of service: {', '.join(out_of_service)}")
    on_host = ctx.vms_on(item.host)
    state: dict[str, Any] = {"in_maintenance": False, **on_host}
    ctx.last[item.host] = state
    planned = {vm for vm, _ in item.moves} | set(item.stops)
    unplanned = [vm for vm in on_host["running_vms"] if vm not in planned]
    if unplanned:
        raise StepFailed(item.host, "recheck",
                         f"running VMs the plan does not cover: {', '.join(unplanned)}")
    for vm, dest in item.moves:
        if dest not in facts or facts[dest].in_maintenance:
            raise StepFailed(item.host, "recheck", f"destination {dest} of {vm} is not in service")
    return {"installed": installed, **state}


def stop_placements(ctx: StepContext, item: HostWork) -> Any:
    # vqual never places a VM on a draining host: the plan's destinations exclude it and
    # no other step starts VMs there. The platform itself is not told (see the docs).
    return {"draining": item.host, "destinations": sorted({d for _, d in item.moves})}


def evacuate(ctx: StepContext, item: HostWork) -> Any:
    results: dict[str, Any] = {}
    todo = []
    now = {v.name: v for v in ctx.read("VMs", lambda: vm_summaries(ctx.platform))}
    for vm, dest in item.moves:
        if vm not in now:
            raise StepFailed(item.host, "evacuate", f"VM {vm} is no longer listed")
        if now[vm].host == dest:
            results[vm] = {"destination": dest, "already_there": True}
        else:
            todo.append((vm, dest, now[vm].power_state in HELD))
    _migrate_all(ctx, item.host, todo, results)
    for vm in item.stops:
        t0 = time.monotonic()
        facts = ctx.platform.power_off(vm, graceful=True,
                                       timeout_s=min(ctx.change.step_timeout_s, 300.0))
        ctx.stopped_at[vm] = time.monotonic()
        results[vm] = {"stopped": True, "power_state": facts.power_state,
                       "seconds": round(time.monotonic() - t0, 3)}
    return results


def _migrate_all(ctx: StepContext, host: str, todo: list[tuple[str, str, bool]],
                 results: dict[str, Any]) -> None:
    """Migrate (vm, destination, live) at most ``max_parallel_migrations`` at once, each
    bounded by ``migration_timeout_s``; the first failure raises StepFailed."""
    timeout = ctx.change.migration_timeout_s
    with ThreadPoolExecutor(max_workers=max(ctx.change.max_parallel_migrations, 1),
                            thread_name_prefix="vqual-migrate") as pool:
        pending: dict[Future[Any], tuple[str, str, float]] = {}
        queue = list(todo)
        failure: str | None = None
        while (queue or pending) and failure is None:
            while queue and len(pending) < ctx.change.max_parallel_migrations:
                vm, dest, live = queue.pop(0)
                fut = pool.submit(ctx.migrate, vm, dest, live)
                pending[fut] = (vm, dest, time.monotonic())
            done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                vm, dest, t0 = pending.pop(fut)
                try:
                    results[vm] = {"destination": dest, "seconds": round(fut.result(), 3)}
                except VqualError as exc:
                    failure = f"migrate {vm} to {dest}: {exc.one_line()}"
            for fut, (vm, dest, t0) in list(pending.items()):
                if time.monotonic() - t0 > timeout:
                    failure = f"migrate {vm} to {dest}: no answer in {timeout:g} s"
        if failure is not None:
            # Halt: migrations already under way finish or time out on their own; none new.
            pool.shutdown(wait=False, cancel_futures=True)
            raise StepFailed(host, "evacuate", failure)


def verify_empty(ctx: StepContext, item: HostWork) -> Any:
    return None  # the post-condition is the check


def enter_maintenance(ctx: StepContext, item: HostWork) -> Any:
    return {"in_maintenance": ctx.platform.enter_maintenance(item.host).in_maintenance}


def patch(ctx: StepContext, item: HostWork) -> Any:
    before = ctx.read("installed", lambda: ctx.executor.installed(item.host))
    if not target_mismatches(before, ctx.change):
        # A resumed run whose patch went through before the crash: never patch twice.
        return {"before": before, "applied": None, "reason": "already at the target"}
    applied = ctx.executor.apply(item.host, ctx.change)
    return {"before": before, "applied": applied}


def reboot(ctx: StepContext, item: HostWork) -> Any:
    seconds = ctx.executor.reboot(item.host, ctx.change.step_timeout_s)
    return {"seconds": round(seconds, 3), "executor": ctx.executor.name}


def requalify(ctx: StepContext, item: HostWork) -> Any:
    started = utc_now_text()
    outcome = ctx.requalifier.requalify(item.host, ctx.requalify_context())
    if ctx.evidence is not None:
        ctx.evidence.results(outcome.results)
        if outcome.reference is not None:
            ctx.evidence.reference(item.host, outcome.reference, started)
    if not outcome.passed:
        raise StepFailed(item.host, "requalify", "; ".join(outcome.failures()))
    return {"results": {r["test_id"]: r["verdict"] for r in outcome.results},
            "reference": outcome.reference}


def leave_maintenance(ctx: StepContext, item: HostWork) -> Any:
    return {"in_maintenance": ctx.platform.exit_maintenance(item.host).in_maintenance}


def health_check(ctx: StepContext, item: HostWork) -> Any:
    health = ctx.read("health", lambda: ctx.executor.health(item.host))
    if not health.get("ok"):
        raise StepFailed(item.host, "health_check", f"the host is not healthy: {health}")
    restarted: dict[str, Any] = {}
    over: list[str] = []
    for vm in item.stops:
        facts = ctx.platform.vm(vm)
        if facts.power_state != RUNNING:
            facts = ctx.platform.power_on(vm)
        stopped = ctx.stopped_at.pop(vm, None)
        # None: stopped by the run this one resumed; its downtime is not known here.
        down = round(time.monotonic() - stopped, 3) if stopped is not None else None
        restarted[vm] = {"power_state": facts.power_state, "downtime_s": down}
        approval = ctx.change.stop_approval(vm)
        if down is not None and approval is not None and down > approval.max_downtime_s:
            over.append(f"{vm} was down {down:g} s, approved {approval.max_downtime_s:g} s")
    if over:
        raise StepFailed(item.host, "health_check", "; ".join(over))
    return {"health": health, "restarted": restarted}


def commit(ctx: StepContext, item: HostWork) -> Any:
    return None  # the orchestrator journals host.committed after it


# -- post-conditions: (held, what was read) ----------------------------------------------------


def nothing_to_read(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """Nothing on the platform to read back: the action's own reads were the check."""
    return True, ctx.last.get(item.host)


def vms_placed(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """Every moved VM is on its destination; every stop-approved VM is off."""
    now = {v.name: v for v in ctx.read("VMs", lambda: vm_summaries(ctx.platform))}
    placed = {vm: now[vm].host if vm in now else None for vm, _ in item.moves}
    wrong = [vm for vm, dest in item.moves if placed[vm] != dest]
    stops = {vm: now[vm].power_state if vm in now else None for vm in item.stops}
    running = [vm for vm, s in stops.items() if s in HELD]
    return not wrong and not running, {"placed": placed, "stops": stops}


def host_empty(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """No powered-on VM on the host."""
    state = {**ctx.last.get(item.host, {}), **ctx.vms_on(item.host)}
    ctx.last[item.host] = state
    return not state["running_vms"], state


def in_maintenance_and_empty(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    state = ctx.observe(item.host)
    return state["in_maintenance"] and not state["running_vms"], state


def at_target(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """The executor's ``installed`` shows the change's target."""
    installed = ctx.read("installed", lambda: ctx.executor.installed(item.host))
    missing = target_mismatches(installed, ctx.change)
    return not missing, {"installed": installed, "missing": missing}


def healthy(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """The executor's ``health`` is ok."""
    health = ctx.read("health", lambda: ctx.executor.health(item.host))
    return bool(health.get("ok")), {"health": health}


def requalified(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """The action raised StepFailed for any result fail or error: it held if it returned."""
    return True, None


def out_of_maintenance(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    state = ctx.observe(item.host, vms=False)
    return not state["in_maintenance"], state


def in_service(ctx: StepContext, item: HostWork) -> tuple[bool, Any]:
    """The host is out of maintenance and every stop-approved VM runs again."""
    state = ctx.observe(item.host, vms=bool(item.stops))
    down = [vm for vm in item.stops if vm not in state.get("running_vms", [])]
    return not down and not state["in_maintenance"], state


@dataclass(frozen=True)
class Step:
    """One per-host step.

    Attributes:
        name: as journaled (``step.begin``/``step.done``) and in the evidence (``patch.<name>``).
        action: does the step; returns what it did, or :data:`AT_TARGET` (``recheck`` only).
        post: whether the step's post-condition holds now, and what was read.
        rerun_on_resume: a crashed run's ``step.begin`` without ``step.done`` means "run it
            again", not "done if the post-condition holds": the platform alone cannot tell
            whether it happened (a reboot), or it checks the moment (``recheck``).
    """

    name: str
    action: Callable[[StepContext, HostWork], Any]
    post: Callable[[StepContext, HostWork], tuple[bool, Any]]
    rerun_on_resume: bool


#: The per-host steps in order; :data:`STEPS_VERSION` names this table.
STEP_TABLE: tuple[Step, ...] = (
    Step("recheck", recheck, nothing_to_read, rerun_on_resume=True),
    Step("stop_placements", stop_placements, nothing_to_read, rerun_on_resume=True),
    Step("evacuate", evacuate, vms_placed, rerun_on_resume=False),
    Step("verify_empty", verify_empty, host_empty, rerun_on_resume=False),
    Step("enter_maintenance", enter_maintenance, in_maintenance_and_empty, rerun_on_resume=False),
    Step("patch", patch, at_target, rerun_on_resume=False),
    Step("reboot", reboot, healthy, rerun_on_resume=True),
    Step("requalify", requalify, requalified, rerun_on_resume=True),
    Step("leave_maintenance", leave_maintenance, out_of_maintenance, rerun_on_resume=False),
    Step("health_check", health_check, in_service, rerun_on_resume=True),
    Step("commit", commit, nothing_to_read, rerun_on_resume=True),
)

#: The step names in order.
STEPS: tuple[str, ...] = tuple(s.name for s in STEP_TABLE)
