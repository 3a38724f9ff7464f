"""The vSphere OQ protocol on throwaway VMs: power cycle, snapshot round trip, clone from a
template, live migration, maintenance round trip, backup and restore.

Everything runs on **throwaway VMs** of one run, in one session:

- ``vqual-tmp-<run id>-oq``, created empty (no guest OS) for the run;
- ``vqual-tmp-<run id>-clone``, cloned from the site's template and deleted again.

Each carries the vqual tag twice: ``config.extraConfig`` key ``vqual.throwaway`` = run id,
set by the create or clone call itself (so a VM never exists untagged, also on a standalone
ESXi, which has no custom attributes), and on a vCenter the custom attribute
``vqual.throwaway`` = run id, which the vSphere Client shows. ``vqual cleanup RUN_ID``
(:mod:`qualification.cleanup`) removes a VM only when its name has the run's prefix *and* a
tag names the run, so it works after a crash and touches nothing else.

Each operation becomes an action ``{name, target, before, after, verdict, reason, started,
finished}``; its verdict is ``pass`` only when the call succeeded *and* its post-condition
holds on the state read back from the platform afterwards. What a platform cannot do is
``not-executed`` with the reason, never ``pass``:

- the snapshot marker and the migration's service interruption need a program run in the
  guest (VMware Tools guest operations); the throwaway VM has no guest OS, so both are
  ``not-executed``;
- a standalone ESXi has one host: no migration, no evacuation;
- vSphere itself has no backup and restore API (backups are made by products outside it, over
  the vStorage APIs for Data Protection), so that test is ``not-executed``.

Site facts come from the target's ``vqual_vsphere_oq`` variable: ``template`` (required for
the clone test), optionally ``destination`` (migration host) and ``maintenance_host``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qualification.checks.vocabulary import VSPHERE_OQ_TESTS as OQ_TESTS
from qualification.errors import NotSupported, PlatformError
from qualification.platforms.base import RUNNING, STOPPED, BadArgs, VmConfig, probe_observation
from qualification.platforms.oq import utc_stamp

if TYPE_CHECKING:  # typing only: the OQ runs on the session it is handed
    from qualification.platforms.vsphere.adapter import VspherePlatform

THROWAWAY_PREFIX = "vqual-tmp-"
TAG_KEY = "vqual.throwaway"
SNAPSHOT_NAME = "vqual-oq-snapshot"
_SAFE_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

NO_GUEST = (
    "needs a program run in the guest (VMware Tools guest operations); the throwaway VM "
    "has no guest OS"
)
NO_BACKUP_API = (
    "vSphere has no backup and restore API of its own (backups are made by products outside "
    "it, over the vStorage APIs for Data Protection); not performed"
)
ONE_HOST = "a standalone ESXi has one host"


def throwaway_name(run_id: str, purpose: str) -> str:
    """``vqual-tmp-<run id>-<purpose>``: the name of one of a run's throwaway VMs.

    Raises:
        BadArgs: the run id is not a safe name part.
    """
    if not _SAFE_RUN_ID.match(run_id):
        raise BadArgs(f"run id {run_id!r} is not a safe VM name part")
    return f"{THROWAWAY_PREFIX}{run_id}-{purpose}"


def is_run_throwaway(vm: Mapping[str, Any], run_id: str) -> bool:
    """Whether a VM (as :meth:`VspherePlatform.vm_tags` lists it) is a throwaway of ``run_id``:
    its name has the run's prefix and its custom attribute or extraConfig tag names the run."""
    return str(vm.get("name", "")).startswith(f"{THROWAWAY_PREFIX}{run_id}-") and run_id in (
        vm.get("attribute"),
        vm.get("extra_config"),
    )


@dataclass
class OqSettings:
    """Site facts of the OQ (``vqual_vsphere_oq``)."""

    template: str | None = None
    destination: str | None = None
    maintenance_host: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> OqSettings:
        """Raises:
        BadArgs: a value is not a non-empty string."""
        values: dict[str, str | None] = {}
        for key in ("template", "destination", "maintenance_host"):
            value = args.get(key)
            if value is not None and (not isinstance(value, str) or not value):
                raise BadArgs(f"oq_protocol: {key} must be a name")
            values[key] = value
        return cls(**values)


@dataclass
class ProtocolResult:
    """What :func:`run_protocol` did: the observation value and the actions."""

    value: dict[str, Any]
    actions: list[dict[str, Any]] = field(default_factory=list)


class _Run:
    """One protocol run: the platform session, the throwaway's name, the actions so far."""

    def __init__(self, platform: VspherePlatform, run_id: str) -> None:
        self.platform = platform
        self.run_id = run_id
        self.actions: list[dict[str, Any]] = []
        self.created: list[str] = []

    def vm_state(self, vm: str) -> dict[str, Any]:
        """A VM's state as the evidence shows it, read from the platform."""
        try:
            return self.platform.vm_state(vm, TAG_KEY)
        except PlatformError as exc:
            return {"error": exc.one_line()}

    def host_state(self, host: str) -> dict[str, Any]:
        """A host's maintenance state and the powered-on VMs registered on it."""
        try:
            found = [h for h in self.platform.host_runtime() if h["name"] == host]
        except PlatformError as exc:
            return {"error": exc.one_line()}
        if not found:
            return {"error": f"host {host!r} not found"}
        return {
            "host": host,
            "in_maintenance": found[0]["in_maintenance"],
            "powered_on_vms": found[0]["powered_on_vms"],
        }

    def step(
        self,
        name: str,
        target: str,
        operation: Callable[[], object],
        state: Callable[[], dict[str, Any]],
        post: Callable[[dict[str, Any]], str | None],
    ) -> tuple[str, str | None]:
        """Run one operation as an action: state before, call, state after, post-condition."""
        started = utc_stamp()
        before = state()
        verdict, reason = "pass", None
        try:
            operation()
        except NotSupported as exc:
            verdict, reason = "not-executed", exc.one_line()
        except PlatformError as exc:
            verdict, reason = "fail", exc.one_line()
        after = state()
        if verdict == "pass":
            reason = post(after)
            if reason is not None:
                verdict = "fail"
        self.actions.append(
            {
                "name": name,
                "target": target,
                "before": before,
                "after": after,
                "verdict": verdict,
                "reason": reason,
                "started": started,
                "finished": utc_stamp(),
            }
        )
        return verdict, reason


def _power(want: str) -> Callable[[dict[str, Any]], str | None]:
    def post(after: dict[str, Any]) -> str | None:
        got = after.get("power_state")
        return None if got == want else f"power state is {got}, not {want}"

    return post


class _Test:
    """Collects one test's failed conditions; its verdict is the worst step's."""

    def __init__(self) -> None:
        self.findings: list[str] = []
        self.not_executed: str | None = None
        self.extra: dict[str, Any] = {}

    def add(self, step: str, verdict: str, reason: str | None) -> bool:
        if verdict == "not-executed":
            self.not_executed = self.not_executed or f"{step}: {reason}"
        elif verdict != "pass":
            self.findings.append(f"{step}: {reason}")
        return verdict == "pass"

    def result(self) -> dict[str, Any]:
        if self.findings:
            verdict = "fail"
        elif self.not_executed:
            verdict = "not-executed"
        else:
            verdict = "pass"
        return {
            "verdict": verdict,
            "reason": "; ".join(self.findings) or self.not_executed,
            "findings": self.findings,
            **self.extra,
        }


def _not_executed(reason: str, **extra: Any) -> dict[str, Any]:
    return {"verdict": "not-executed", "reason": reason, "findings": [], **extra}


def _other_hosts(platform: VspherePlatform, exclude: str) -> list[str]:
    """Connected hosts out of maintenance other than ``exclude``, those carrying the fewest
    powered-on VMs first (so an evacuated host's round trip disturbs the least)."""
    hosts = [
        h
        for h in platform.host_runtime()
        if h["name"] != exclude and h["connection_state"] == "connected" and not h["in_maintenance"]
    ]
    return [h["name"] for h in sorted(hosts, key=lambda h: (len(h["powered_on_vms"]), h["name"]))]


def _preflight(platform: VspherePlatform, settings: OqSettings, tests: Sequence[str]) -> None:
    """Refuse before anything is made: a named template or host that does not exist.

    Raises:
        PlatformError: one line naming what is missing.
    """
    where = platform.endpoint
    if "clone" in tests and settings.template and not platform.vm_exists(settings.template):
        raise PlatformError(f"template {settings.template!r} not found", where=where)
    names = {h["name"] for h in platform.host_runtime()}
    for key in ("destination", "maintenance_host"):
        host = getattr(settings, key)
        if host and host not in names:
            raise PlatformError(
                f"{key} host {host!r} not found (hosts: {', '.join(sorted(names))})", where=where
            )


def run_protocol(
    platform: VspherePlatform,
    run_id: str,
    tests: Sequence[str] = OQ_TESTS,
    settings: OqSettings | None = None,
) -> ProtocolResult:
    """Run the OQ tests asked for on the run's throwaway VMs; remove them afterwards.

    Args:
        platform: an open session (vCenter or standalone ESXi).
        run_id: the run; names and tags the throwaway VMs.
        tests: names from :data:`OQ_TESTS`.
        settings: the site's template and optional hosts.

    Returns:
        ``value`` ``{"vm", "standalone", "tests": {test: {verdict, reason, findings, ...}},
        "cleanup": {verdict, reason}}`` and one action per operation.

    Raises:
        BadArgs: an unknown test or an unsafe run id.
        PlatformError: a named template or host does not exist, or the throwaway VM could not
            be created (nothing of the run is left behind).
    """
    unknown = [t for t in tests if t not in OQ_TESTS]
    if unknown:
        raise BadArgs(
            f"oq_protocol: unknown test(s) {', '.join(unknown)} (known: {', '.join(OQ_TESTS)})"
        )
    settings = settings or OqSettings()
    vm = throwaway_name(run_id, "oq")
    run = _Run(platform, run_id)
    standalone = platform.standalone or len(platform.host_runtime()) < 2
    _preflight(platform, settings, tests)
    results: dict[str, dict[str, Any]] = {}

    def vm_state() -> dict[str, Any]:
        return run.vm_state(vm)

    try:
        _create_throwaway(run, vm, vm_state)
        for test in OQ_TESTS:
            if test in tests:
                results[test] = _run_test(run, test, vm, vm_state, settings, standalone)
    finally:
        cleanup = _cleanup(run)
    return ProtocolResult(
        value={"vm": vm, "standalone": standalone, "tests": results, "cleanup": cleanup},
        actions=run.actions,
    )


def _create_throwaway(run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]]) -> None:
    """Create the run's empty VM tagged with the run id (``vm.create``, ``vm.tag``).

    Raises:
        PlatformError: the VM could not be created or tagged.
    """
    platform, run_id = run.platform, run.run_id

    def tagged(after: dict[str, Any]) -> str | None:
        if not after.get("exists"):
            return "the VM does not exist after create"
        if after.get("power_state") != STOPPED:
            return f"power state is {after.get('power_state')}, not stopped"
        if after.get("tag", {}).get("extra_config") != run_id:
            return f"extraConfig {TAG_KEY} is not the run id"
        return None

    verdict, reason = run.step(
        "vm.create",
        vm,
        lambda: platform.create_vm(
            VmConfig(name=vm, memory_mib=64), extra_config={TAG_KEY: run_id}
        ),
        vm_state,
        tagged,
    )
    if verdict == "pass":
        run.created.append(vm)

        def set_tag() -> None:
            if not platform.set_vm_attribute(vm, TAG_KEY, run_id):
                raise NotSupported(
                    "tag with a custom attribute",
                    "the endpoint has no custom attributes (standalone ESXi)",
                    where=platform.endpoint,
                )

        verdict, reason = run.step(
            "vm.tag",
            vm,
            set_tag,
            vm_state,
            lambda after: (
                None
                if after.get("tag", {}).get("attribute") == run_id
                else f"custom attribute {TAG_KEY} is not the run id"
            ),
        )
        # A standalone ESXi has no custom attributes: the extraConfig tag is the tag.
        if verdict == "fail":
            raise PlatformError(f"tag vm {vm} failed: {reason}", where=platform.endpoint)
    elif platform.vm_exists(vm):
        run.created.append(vm)
    if vm not in run.created:
        raise PlatformError(f"create vm {vm} failed: {reason}", where=platform.endpoint)


def _run_test(
    run: _Run,
    test: str,
    vm: str,
    vm_state: Callable[[], dict[str, Any]],
    settings: OqSettings,
    standalone: bool,
) -> dict[str, Any]:
    """One OQ test's value; on a standalone ESXi the tests that need a second host are not
    executed."""
    if test == "power_cycle":
        return _power_cycle(run, vm, vm_state)
    if test == "snapshot":
        return _snapshot(run, vm, vm_state)
    if test == "clone":
        return _clone(run, settings)
    if test == "migrate":
        return (
            _not_executed(
                f"{ONE_HOST}: no other host to migrate to",
                interruption={"verdict": "not-executed", "reason": ONE_HOST},
            )
            if standalone
            else _migrate(run, vm, vm_state, settings)
        )
    if test == "maintenance":
        return (
            _not_executed(
                f"{ONE_HOST}: its VMs cannot be evacuated to another host, and "
                "entering maintenance would need every VM on it stopped"
            )
            if standalone
            else _maintenance(run, vm, vm_state, settings)
        )
    return _not_executed(NO_BACKUP_API)


def _ensure_running(run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]]) -> bool:
    if vm_state().get("power_state") == RUNNING:
        return True
    verdict, _ = run.step(
        "vm.power_on", vm, lambda: run.platform.power_on(vm), vm_state, _power(RUNNING)
    )
    return verdict == "pass"


def _power_cycle(run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    test = _Test()
    p = run.platform
    for name, op, want in (
        ("vm.power_on", lambda: p.power_on(vm), RUNNING),
        ("vm.power_off", lambda: p.power_off(vm), STOPPED),
        ("vm.power_on", lambda: p.power_on(vm), RUNNING),
    ):
        if not test.add(name, *run.step(name, vm, op, vm_state, _power(want))):
            break
    return test.result()


def _snapshot(run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Snapshot of the running VM (with memory), change (power off), revert, delete."""
    test = _Test()
    test.extra["marker"] = {"verdict": "not-executed", "reason": f"the guest marker {NO_GUEST}"}
    p = run.platform
    if not test.add(
        "vm.power_on",
        "pass" if _ensure_running(run, vm, vm_state) else "fail",
        "the VM could not be started for the snapshot",
    ):
        return test.result()

    def created(after: dict[str, Any]) -> str | None:
        if SNAPSHOT_NAME not in after.get("snapshots", []):
            return f"snapshot {SNAPSHOT_NAME} is not listed after create"
        states = [s.power_state for s in p.snapshots(vm) if s.name == SNAPSHOT_NAME]
        return None if states == [RUNNING] else f"snapshot captured state {states}, not running"

    ok = test.add(
        "vm.snapshot_create",
        *run.step(
            "vm.snapshot_create",
            vm,
            lambda: p.snapshot_create(vm, SNAPSHOT_NAME, description="vqual OQ"),
            vm_state,
            created,
        ),
    )
    if not ok:
        return test.result()
    test.add(
        "vm.power_off",
        *run.step("vm.power_off", vm, lambda: p.power_off(vm), vm_state, _power(STOPPED)),
    )

    def reverted(after: dict[str, Any]) -> str | None:
        problems = []
        if after.get("current_snapshot") != SNAPSHOT_NAME:
            problems.append(f"current snapshot is {after.get('current_snapshot')}")
        if after.get("power_state") != RUNNING:
            problems.append(
                f"power state is {after.get('power_state')} after revert, not the snapshot's "
                f"{RUNNING} (the state was not restored)"
            )
        return "; ".join(problems) or None

    test.add(
        "vm.snapshot_revert",
        *run.step(
            "vm.snapshot_revert",
            vm,
            lambda: p.snapshot_revert(vm, SNAPSHOT_NAME),
            vm_state,
            reverted,
        ),
    )
    test.add(
        "vm.snapshot_delete",
        *run.step(
            "vm.snapshot_delete",
            vm,
            lambda: p.snapshot_delete(vm, SNAPSHOT_NAME),
            vm_state,
            lambda after: (
                None
                if SNAPSHOT_NAME not in after.get("snapshots", [])
                else f"snapshot {SNAPSHOT_NAME} still listed after delete"
            ),
        ),
    )
    return test.result()


def _clone(run: _Run, settings: OqSettings) -> dict[str, Any]:
    """Clone the site's template to a tagged throwaway, compare, delete."""
    if not settings.template:
        return _not_executed("no template configured for this target (vqual_vsphere_oq.template)")
    p = run.platform
    template = settings.template
    clone = throwaway_name(run.run_id, "clone")
    test = _Test()
    test.extra["template"] = template
    test.extra["clone"] = clone
    source = p.vm_details(template)

    def clone_state() -> dict[str, Any]:
        return run.vm_state(clone)

    def cloned(after: dict[str, Any]) -> str | None:
        problems = []
        if not after.get("exists"):
            return "the clone does not exist"
        if after.get("template"):
            problems.append("the clone is a template")
        if after.get("uuid") == source["uuid"]:
            problems.append("the clone has the template's UUID")
        for key in ("vcpus", "memory_mib"):
            if after.get(key) != source[key]:
                problems.append(f"{key} is {after.get(key)}, the template's {source[key]}")
        if after.get("tag", {}).get("extra_config") != run.run_id:
            problems.append(f"extraConfig {TAG_KEY} is not the run id")
        return "; ".join(problems) or None

    def do_clone() -> None:
        p.clone_vm(template, clone, extra_config={TAG_KEY: run.run_id})
        run.created.append(clone)
        p.set_vm_attribute(clone, TAG_KEY, run.run_id)

    ok = test.add("vm.clone", *run.step("vm.clone", clone, do_clone, clone_state, cloned))
    if not ok and not p.vm_exists(clone):
        return test.result()
    verdict, reason = run.step(
        "vm.delete",
        clone,
        lambda: remove_vm(p, clone),
        clone_state,
        lambda after: None if not after.get("exists") else "the clone still exists",
    )
    if test.add("vm.delete", verdict, reason):
        run.created.remove(clone)
    return test.result()


def _migrate(
    run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]], settings: OqSettings
) -> dict[str, Any]:
    """vMotion the running throwaway to another host; the new host read back from the platform."""
    test = _Test()
    test.extra["interruption"] = {
        "verdict": "not-executed",
        "reason": f"the service interruption is measured by a heartbeat in the guest, which {NO_GUEST}",
    }
    p = run.platform
    if not test.add(
        "vm.power_on",
        "pass" if _ensure_running(run, vm, vm_state) else "fail",
        "the VM could not be started for the migration",
    ):
        return test.result()
    source = vm_state().get("host", "")
    candidates = [settings.destination] if settings.destination else _other_hosts(p, source)
    if not candidates or candidates[0] == source:
        return _not_executed(f"no other connected host out of maintenance than {source}")
    destination = candidates[0]
    test.extra.update(source=source, destination=destination)

    def moved(after: dict[str, Any]) -> str | None:
        problems = []
        if after.get("host") != destination:
            problems.append(f"the VM is on {after.get('host')}, not {destination}")
        if after.get("power_state") != RUNNING:
            problems.append(f"power state is {after.get('power_state')}, not running")
        return "; ".join(problems) or None

    test.add(
        "vm.migrate",
        *run.step(
            "vm.migrate", vm, lambda: p.migrate_vm(vm, destination, live=True), vm_state, moved
        ),
    )
    return test.result()


def _maintenance(
    run: _Run, vm: str, vm_state: Callable[[], dict[str, Any]], settings: OqSettings
) -> dict[str, Any]:
    """Evacuate the throwaway from its host, enter maintenance, leave; each confirmed from the
    platform. Only the throwaway is moved: other VMs are the platform's to evacuate (vCenter
    does with DRS), and a host left carrying powered-on VMs fails the step."""
    test = _Test()
    p = run.platform
    host = settings.maintenance_host or vm_state().get("host", "")
    test.extra["host"] = host
    before = run.host_state(host)
    if before.get("in_maintenance"):
        return _not_executed(
            f"host {host} is already in maintenance mode (not ours to leave)", host=host
        )
    if vm_state().get("host") == host:
        targets = _other_hosts(p, host)
        if not targets:
            return _not_executed(f"no other host to evacuate {vm} to", host=host)
        to = targets[0]

        def evacuated(after: dict[str, Any]) -> str | None:
            return (
                None if after.get("host") == to else f"the VM is on {after.get('host')}, not {to}"
            )

        if not test.add(
            "vm.evacuate",
            *run.step(
                "vm.evacuate", vm, lambda: p.migrate_vm(vm, to, live=True), vm_state, evacuated
            ),
        ):
            return test.result()

    def entered(after: dict[str, Any]) -> str | None:
        problems = []
        if not after.get("in_maintenance"):
            problems.append("the host is not in maintenance mode")
        if after.get("powered_on_vms"):
            problems.append(
                f"powered-on VMs still on the host: {', '.join(after['powered_on_vms'])}"
            )
        return "; ".join(problems) or None

    try:
        test.add(
            "host.enter_maintenance",
            *run.step(
                "host.enter_maintenance",
                host,
                lambda: p.enter_maintenance(host),
                lambda: run.host_state(host),
                entered,
            ),
        )
    finally:
        # Leave maintenance whenever this run put the host there, also after a failed check.
        if run.host_state(host).get("in_maintenance"):
            test.add(
                "host.exit_maintenance",
                *run.step(
                    "host.exit_maintenance",
                    host,
                    lambda: p.exit_maintenance(host),
                    lambda: run.host_state(host),
                    lambda after: (
                        None
                        if after.get("in_maintenance") is False
                        else "the host is still in maintenance mode"
                    ),
                ),
            )
    return test.result()


def remove_vm(platform: VspherePlatform, vm: str) -> None:
    """Power off, drop snapshots, delete with its files."""
    if platform.vm(vm).power_state != STOPPED:
        platform.power_off(vm)
    for snap in platform.snapshots(vm):
        platform.snapshot_delete(vm, snap.name)
    platform.delete_vm(vm, delete_storage=True)


def _cleanup(run: _Run) -> dict[str, Any]:
    """Remove every throwaway this run made that still exists; one action each."""
    problems = []
    for vm in list(run.created):
        try:
            exists = run.platform.vm_exists(vm)
        except PlatformError as exc:
            problems.append(exc.one_line())
            continue
        if not exists:
            continue
        verdict, reason = run.step(
            "vm.cleanup",
            vm,
            functools.partial(remove_vm, run.platform, vm),
            functools.partial(run.vm_state, vm),
            lambda after: None if not after.get("exists") else "the VM still exists",
        )
        if verdict != "pass":
            problems.append(f"throwaway VM {vm} left behind: {reason}")
    return {"verdict": "fail" if problems else "pass", "reason": "; ".join(problems) or None}


def protocol_observation(
    platform: VspherePlatform, run_id: str, args: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``oq_protocol`` probe method: ``args`` {tests, template?, destination?,
    maintenance_host?} as one observation with the actions.

    Raises:
        BadArgs: malformed arguments.
        PlatformError: what :func:`run_protocol` raises.
    """
    tests = args.get("tests", list(OQ_TESTS))
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise BadArgs("oq_protocol: argument 'tests' must be a list of test names")
    started = time.monotonic()
    result = run_protocol(platform, run_id, tests, OqSettings.from_args(args))
    result.value["duration_ms"] = int((time.monotonic() - started) * 1000)
    return probe_observation(
        value=result.value,
        method=f"vSphere OQ {', '.join(result.value['tests'])} on throwaway VMs "
        f"{THROWAWAY_PREFIX}{run_id}-* {platform.endpoint}",
        actions=result.actions,
    )
