"""OQ lifecycle on a throwaway VM, over any :class:`HypervisorPlatform`.

The sequence runs in one platform session, because some platforms (libvirt's test driver)
keep no state between connections. Steps run in a fixed order; asking for a step also runs
the steps it needs (``snapshot_revert`` needs ``snapshot_create`` and ``stop``, so that the
revert has a state to restore). Each executed step becomes an action
``{name, target, before, after, verdict, reason, started, finished}``; its verdict is
``pass`` only when the operation succeeded *and* its post-condition held on the state read
back afterwards. The throwaway VM is always removed, and only if this run created it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..checks.vocabulary import LIFECYCLE_STEPS
from ..errors import NotSupported, PlatformError
from .base import RUNNING, STOPPED, BadArgs, HypervisorPlatform, VmConfig, probe_observation

_NEEDS: dict[str, tuple[str, ...]] = {
    "define": (),
    "start": ("define",),
    "snapshot_create": ("start",),
    "stop": ("start",),
    "snapshot_revert": ("snapshot_create", "stop"),
    "snapshot_delete": ("snapshot_create",),
    "undefine": ("define",),
}
SNAPSHOT_NAME = "vqual-oq-snapshot"


def utc_stamp() -> str:
    """UTC time in the evidence format ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _needs_of(step: str) -> tuple[str, ...]:
    """Every step ``step`` needs, directly or through another step, in execution order."""
    found: set[str] = set()
    todo = list(_NEEDS[step])
    while todo:
        need = todo.pop()
        if need not in found:
            found.add(need)
            todo.extend(_NEEDS[need])
    return tuple(s for s in LIFECYCLE_STEPS if s in found)


def plan_steps(requested: Iterable[str]) -> tuple[str, ...]:
    """The requested steps plus what they need, in execution order.

    Raises:
        ValueError: a step name is unknown.
    """
    wanted: set[str] = set()
    todo = list(requested)
    while todo:
        step = todo.pop()
        if step not in _NEEDS:
            raise ValueError(f"unknown OQ step {step!r} (known: {', '.join(LIFECYCLE_STEPS)})")
        if step not in wanted:
            wanted.add(step)
            todo.extend(_NEEDS[step])
    return tuple(s for s in LIFECYCLE_STEPS if s in wanted)


@dataclass
class LifecycleResult:
    """What :func:`run_lifecycle` did.

    Attributes:
        value: the observation value: ``{"vm", "steps": {step: {verdict, reason,
            duration_ms}}, "cleanup": {verdict, reason}, "passed"}``.
        actions: one action dict per executed step, then one for the cleanup if needed.
    """

    value: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)


def _state(platform: HypervisorPlatform, vm: str) -> dict[str, Any]:
    """The throwaway VM's state as evidence shows it before and after a step."""
    if not platform.vm_exists(vm):
        return {"exists": False}
    facts = platform.vm(vm)
    return {
        "exists": True,
        "uuid": facts.uuid,
        "power_state": facts.power_state,
        "persistent": facts.persistent,
        "snapshots": list(facts.snapshots),
        "disks": [d.source for d in facts.disks],
        "host": facts.host,
    }


def _snapshot_state(platform: HypervisorPlatform, vm: str) -> str | None:
    for snap in platform.snapshots(vm):
        if snap.name == SNAPSHOT_NAME:
            return snap.power_state
    return None


@dataclass
class _Lifecycle:
    """What the steps of one lifecycle run share and leave behind."""

    platform: HypervisorPlatform
    vm: str
    #: whether this run defined the VM (only then does it remove it)
    created: bool = False
    #: the power state the snapshot captured, once it exists
    snapshot_state: str | None = None
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)


def run_lifecycle(
    platform: HypervisorPlatform,
    vm: str,
    steps: Sequence[str] = LIFECYCLE_STEPS,
    *,
    graceful_stop: bool = False,
    config: VmConfig | None = None,
    disk_mib: int = 16,
    pool: str | None = None,
) -> LifecycleResult:
    """Run the OQ lifecycle on the throwaway VM ``vm``; never raises for a platform failure.

    Args:
        platform: an open platform session; the whole sequence uses only it.
        vm: name of the throwaway VM (``vqual-oq-<run id>``); must not exist yet.
        steps: the steps asked for; needed steps are added (see :func:`plan_steps`).
        graceful_stop: stop by guest shutdown instead of power off.
        config: the VM to define; default 1 vCPU, 64 MiB and an empty ``disk_mib`` disk in
            ``pool`` (QEMU keeps snapshots of a running VM in its qcow2 disk; a platform
            without a pool defines the VM diskless, and says so in the snapshot step).
    """
    plan = plan_steps(steps)
    cfg = config or VmConfig(name=vm, disk_mib=disk_mib, pool=pool)
    run = _Lifecycle(platform, vm)
    operations: dict[str, Callable[[], object]] = {
        "define": lambda: platform.create_vm(cfg),
        "start": lambda: platform.power_on(vm),
        "snapshot_create": lambda: platform.snapshot_create(
            vm, SNAPSHOT_NAME, description="vqual OQ"
        ),
        "stop": lambda: platform.power_off(vm, graceful=graceful_stop),
        "snapshot_revert": lambda: platform.snapshot_revert(vm, SNAPSHOT_NAME),
        "snapshot_delete": lambda: platform.snapshot_delete(vm, SNAPSHOT_NAME),
        "undefine": lambda: _remove(platform, vm),
    }
    for step in plan:
        # A step runs unless a step it needs did not pass; independent steps still run
        # (stop does not need a snapshot), so one failure does not hide the others.
        failed_need = next(
            (n for n in _needs_of(step) if run.summary.get(n, {}).get("verdict") != "pass"),
            None,
        )
        if failed_need is not None:
            run.summary[step] = {
                "verdict": "not-executed",
                "reason": f"step {failed_need} did not pass",
                "duration_ms": 0,
            }
            continue
        _run_step(run, step, operations[step])
    cleanup = _clean_up(run)
    value = {
        "vm": vm,
        "steps": run.summary,
        "cleanup": cleanup,
        "passed": all(s["verdict"] == "pass" for s in run.summary.values())
        and cleanup["verdict"] == "pass",
    }
    return LifecycleResult(value=value, actions=run.actions)


def _run_step(run: _Lifecycle, step: str, operation: Callable[[], object]) -> None:
    """Run one step, judge its post-condition on the state read back, record the action."""
    platform, vm = run.platform, run.vm
    started = utc_stamp()
    t0 = time.monotonic()
    before = _safe_state(platform, vm)
    verdict, reason = "pass", None
    try:
        operation()
        if step == "define":
            run.created = True
        if step == "snapshot_create":
            run.snapshot_state = _snapshot_state(platform, vm)
    except NotSupported as exc:
        verdict, reason = "not-executed", exc.one_line()
    except PlatformError as exc:
        verdict, reason = "fail", exc.one_line()
    after = _safe_state(platform, vm)
    if step == "define" and after.get("exists") and not before.get("exists"):
        run.created = True  # defined even if a later read failed: still ours to remove
    if verdict == "pass":
        reason = _post_condition(step, after, run.snapshot_state)
        if reason is not None:
            verdict = "fail"
    finished = utc_stamp()
    duration_ms = int((time.monotonic() - t0) * 1000)
    run.summary[step] = {"verdict": verdict, "reason": reason, "duration_ms": duration_ms}
    run.actions.append(
        {
            "name": f"vm.{step}",
            "target": vm,
            "before": before,
            "after": after,
            "verdict": verdict,
            "reason": reason,
            "started": started,
            "finished": finished,
        }
    )


def _post_condition(step: str, after: dict[str, Any], snapshot_state: str | None) -> str | None:
    """Why the post-condition of ``step`` does not hold on ``after``, or None."""
    if step == "define":
        ok = after.get("exists") and after.get("power_state") == STOPPED
        return None if ok else "VM is not defined and stopped after define"
    if step == "start":
        ok = after.get("power_state") == RUNNING
        return None if ok else f"power state is {after.get('power_state')}, not running"
    if step == "stop":
        ok = after.get("power_state") == STOPPED
        return None if ok else f"power state is {after.get('power_state')}, not stopped"
    if step == "snapshot_create":
        if SNAPSHOT_NAME not in after.get("snapshots", []):
            return f"snapshot {SNAPSHOT_NAME} is not listed after create"
        if snapshot_state != RUNNING:
            return f"snapshot captured state {snapshot_state}, not running"
        return None
    if step == "snapshot_revert":
        ok = after.get("power_state") == snapshot_state
        return (
            None
            if ok
            else f"power state is {after.get('power_state')} after revert, "
            f"not the snapshot's {snapshot_state}"
        )
    if step == "snapshot_delete":
        ok = SNAPSHOT_NAME not in after.get("snapshots", [])
        return None if ok else f"snapshot {SNAPSHOT_NAME} still listed after delete"
    if step == "undefine":
        return None if not after.get("exists") else "VM still defined after undefine"
    raise AssertionError(step)  # plan_steps only yields known steps


def _clean_up(run: _Lifecycle) -> dict[str, Any]:
    """Remove the VM if this run made it and it is still there; ``{verdict, reason}``."""
    platform, vm = run.platform, run.vm
    cleanup: dict[str, Any] = {"verdict": "pass", "reason": None}
    if run.created and _safe_state(platform, vm).get("exists"):
        started = utc_stamp()
        before = _safe_state(platform, vm)
        try:
            _remove(platform, vm)
        except PlatformError as exc:
            cleanup = {"verdict": "fail", "reason": f"throwaway VM left behind: {exc.one_line()}"}
        after = _safe_state(platform, vm)
        run.actions.append(
            {
                "name": "vm.cleanup",
                "target": vm,
                "before": before,
                "after": after,
                **cleanup,
                "started": started,
                "finished": utc_stamp(),
            }
        )
    return cleanup


def _remove(platform: HypervisorPlatform, vm: str) -> None:
    """Power off, drop snapshots, delete: what undefine and cleanup both need."""
    if platform.vm(vm).power_state != STOPPED:
        platform.power_off(vm)
    for snap in platform.snapshots(vm):
        platform.snapshot_delete(vm, snap.name)
    platform.delete_vm(vm, delete_storage=True)


def _safe_state(platform: HypervisorPlatform, vm: str) -> dict[str, Any]:
    try:
        return _state(platform, vm)
    except PlatformError as exc:
        return {"error": exc.one_line()}


def lifecycle_observation(
    platform: HypervisorPlatform, vm: str, args: Mapping[str, Any], label: str, endpoint: str
) -> dict[str, Any]:
    """The ``oq_lifecycle`` probe method of an API platform (vSphere, Hyper-V): the
    requested steps on throwaway VM ``vm``, as one observation with the steps' actions.

    Raises:
        BadArgs: ``steps`` is not a list of known step names.
    """
    steps = args.get("steps", list(LIFECYCLE_STEPS))
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise BadArgs("oq_lifecycle: argument 'steps' must be a list of step names")
    try:
        result = run_lifecycle(platform, vm, steps, graceful_stop=False, disk_mib=0, pool=None)
    except ValueError as exc:
        raise BadArgs(f"oq_lifecycle: {exc}") from None
    return probe_observation(
        value=result.value,
        method=f"{label} OQ lifecycle {', '.join(result.value['steps'])} on {vm} {endpoint}",
        actions=result.actions,
    )
