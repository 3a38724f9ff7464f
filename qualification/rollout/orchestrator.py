"""The rolling-patch orchestrator: a journaled per-host state machine (docs/rolling-patch.md).

``Orchestrator.run()`` checks the gates (reads only), takes the cluster lease, then patches the
plan's hosts one at a time through the steps in :data:`~qualification.rollout.journal.STEPS`.
Each step is journaled (``step.begin``, fsynced) before it runs and marked done
(``step.done``) only after its post-condition was read back from the platform.
``Orchestrator.resume(run_id)`` starts a new run linked to a crashed or halted one.

Failure policy: halt at the first failure, roll nothing back. Before ``enter_maintenance`` the
VMs stay where they are; after it the host stays in maintenance and empty. Only reads retry.
Every wait is bounded (migration and step timeouts from the change). A ``deviation.raised``
record names the failed step, the host and the reason.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PLATFORM,
    BadInputError,
    NotSupported,
    PlatformError,
    VqualError,
    exit_code_for_verdict,
)
from qualification.platforms.base import RUNNING, HypervisorPlatform
from qualification.rollout.change import RolloutChange
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.executors import PatchExecutor, target_mismatches
from qualification.rollout.gates import Gate, cluster_gates, enforce, window_gate
from qualification.rollout.journal import (
    STEPS,
    HostProgress,
    Journal,
    JournalState,
    journal_chain,
    replay,
)
from qualification.rollout.lease import LeaseManager
from qualification.rollout.requalify import Requalifier, RequalifyContext
from qualification.spec.change import new_run_id, validate_run_id
from qualification.timeutil import utc_now, utc_now_text
from qualification.verdict import VERDICTS

_T = TypeVar("_T")

#: Power states that hold a VM on its host (it must move before maintenance).
_HELD = frozenset({"running", "paused", "stopping"})


class StepFailed(VqualError):
    """A step's operation failed or its post-condition did not hold (exit 1)."""

    exit_code = EXIT_FAILED

    def __init__(self, host: str, step: str, reason: str) -> None:
        self.host = host
        self.step = step
        self.reason = " ".join(reason.split())
        super().__init__(f"{step} failed: {self.reason}", where=host)


class InjectedFault(PlatformError):
    """A fault a test injected at (host, step)."""


def _sigkill() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(137)  # not reached


@dataclass
class FaultInjector:
    """Test hooks: fail a step, or kill the process right after a journal line is durable.

    Attributes:
        fail_at: raise :class:`InjectedFault` inside this (host, step), after its
            ``step.begin`` and before its operation.
        crash_after_line: kill the process right after journal line N (0-based) of the run.
        crash_during: kill the process inside this (host, step) right after its operation
            (before the post-condition is read and ``step.done`` written).
        crash: how to die (default SIGKILL to the own process).
    """

    fail_at: tuple[str, str] | None = None
    crash_after_line: int | None = None
    crash_during: tuple[str, str] | None = None
    crash: Callable[[], NoReturn] = _sigkill

    def after_line(self, index: int) -> None:
        if self.crash_after_line is not None and index == self.crash_after_line:
            self.crash()

    def before_operation(self, host: str, step: str) -> None:
        if self.fail_at == (host, step):
            raise InjectedFault(f"{step} failed: injected fault", where=host)

    def after_operation(self, host: str, step: str) -> None:
        if self.crash_during == (host, step):
            self.crash()


@dataclass(frozen=True)
class HostWork:
    """What to do on one host, from the plan: moves (vm, destination) and VMs to stop."""

    host: str
    moves: tuple[tuple[str, str], ...] = ()
    stops: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "moves": [list(m) for m in self.moves], "stops": list(self.stops)}


@dataclass
class PatchOutcome:
    """How a run ended.

    Attributes:
        status: ``done`` (every host committed or skipped), ``halted`` (a step failed),
            ``refused`` (a gate failed; nothing changed), ``planned`` (``--plan`` only).
        verdict: the sealed bundle's overall verdict (None without a bundle); a run that
            wrote one exits with the verdict's code (docs/formats.md), so ``done`` with
            RP-OQ-01 ``not-executed`` exits 3, not 0.
        counts: the bundle's results by verdict.
    """

    status: str
    run_id: str | None
    change_id: str
    exit_code: int
    plan_digest: str | None = None
    bundle: Path | None = None
    seal: str | None = None
    committed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    deviation: dict[str, Any] | None = None
    gates: list[dict[str, object]] = field(default_factory=list)
    resumed_from: str | None = None
    mutating_calls: int | None = None
    verdict: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "vqual.patch/v1",
            "status": self.status,
            "verdict": self.verdict,
            "counts": dict(self.counts),
            "run_id": self.run_id,
            "change_id": self.change_id,
            "exit_code": self.exit_code,
            "plan_digest": self.plan_digest,
            "bundle": str(self.bundle) if self.bundle else None,
            "seal": self.seal,
            "committed": list(self.committed),
            "skipped": list(self.skipped),
            "deviation": self.deviation,
            "gates": list(self.gates),
            "resumed_from": self.resumed_from,
        }

    def to_text(self, resume_command: str | None = None) -> str:
        """The summary a person reads: its first line shows the bundle's verdict (the exit
        code's meaning), then the plan, the hosts, the halt and the bundle.

        Args:
            resume_command: the ``vqual patch`` command line without ``--resume``, shown
                when the run halted.
        """
        word = (self.verdict or self.status).upper()
        counts = ", ".join(f"{k} {self.counts.get(k, 0)}" for k in _COUNTED)
        detail = f"run {self.status}; {counts}" if self.verdict is not None else ""
        lines = [f"vqual: {self.change_id} run {self.run_id}: {word}"
                 + (f" ({detail})" if detail else "")]
        lines.append(f"  plan:     {self.plan_digest}")
        lines.append(f"  patched:  {', '.join(self.committed) or '-'}")
        lines += [f"  skipped:  {s['host']}: {s['reason']}" for s in self.skipped]
        not_run = self.counts.get("not-executed", 0)
        if not_run and self.status == "done":
            lines.append(f"  not run:  {not_run} planned test(s) not executed (reasons in the "
                         "bundle's report)")
        if self.deviation:
            d = self.deviation
            lines.append(f"  halted:   {d['target']} {d['step']}: {d['reason']}")
            if resume_command:
                lines.append(f"  resume:   {resume_command} --resume {self.run_id}")
        lines.append(f"  evidence: {self.bundle or '-'}")
        lines.append(f"  seal:     {self.seal or '-'}")
        return "\n".join(lines)


_COUNTED = VERDICTS


class Orchestrator:
    """Runs or resumes one change's rolling patch.

    Args:
        platform_factory: opens a session to the platform; called once for the run and once
            per migration worker thread (sessions are not shared between threads).
        executor: patches a host.
        requalifier: requalifies a patched host and the cluster after the last one.
        change: the loaded change file.
        state_dir: holds ``leases/`` and ``journals/``.
        evidence: writes the bundle; None writes none (``--plan`` and tests of gates only).
        fault: test hooks.
        progress: one line per host and step (the CLI prints them on stderr).
        lease_ttl_s: how long a lease stays live without a heartbeat.
        read_retries: attempts for a read that fails with a platform error (writes never retry).
    """

    def __init__(
        self,
        platform_factory: Callable[[], HypervisorPlatform],
        executor: PatchExecutor,
        requalifier: Requalifier,
        change: RolloutChange,
        state_dir: Path,
        evidence: PatchEvidence | None,
        fault: FaultInjector | None = None,
        *,
        progress: Callable[[str], None] | None = None,
        lease_ttl_s: float = 120.0,
        read_retries: int = 3,
        now: Callable[[], Any] = utc_now,
    ) -> None:
        self.platform_factory = platform_factory
        self.executor = executor
        self.requalifier = requalifier
        self.change = change
        self.state_dir = Path(state_dir)
        self.evidence = evidence
        self.fault = fault or FaultInjector()
        self.progress = progress or (lambda _line: None)
        self.lease_ttl_s = lease_ttl_s
        self.read_retries = read_retries
        self.now = now
        self._platform: HypervisorPlatform | None = None
        self._local = threading.local()
        self._worker_platforms: list[HypervisorPlatform] = []
        self._journal: Journal | None = None
        self._run_id = ""
        self._current_step = "gates"
        # The last state read per host: the next step's "before" (saves a read per step).
        self._last: dict[str, Any] = {}
        self._stopped_at: dict[str, float] = {}  # stop-approved VMs: when they were stopped

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def platform(self) -> HypervisorPlatform:
        if self._platform is None:
            self._platform = self.platform_factory()
        return self._platform

    def _worker_platform(self) -> HypervisorPlatform:
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

    def _read(self, what: str, fn: Callable[[], _T]) -> _T:
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

    def _snapshot(self, *, current: str | None = None, committed: Mapping[str, str] | None = None
                  ) -> tuple[Any, Any]:
        from qualification.rollout.inventory import snapshot
        from qualification.rollout.planner import plan_rollout

        snap = self._read("cluster", lambda: snapshot(
            self.platform, self.change.cluster, self.change, installed=self.executor.installed))
        plan = plan_rollout(snap, self.change, committed=committed, current=current)
        return snap, plan

    # -- entry points -----------------------------------------------------------------------

    def plan(self) -> Any:
        """The live plan (reads only)."""
        try:
            return self._snapshot()[1]
        finally:
            self.close()

    def run(self, *, bind: str | None = None, run_id: str | None = None) -> PatchOutcome:
        """Gates, lease, then every host of the plan. Raises GateRefused/LeaseRefused (exit 2)
        or PlatformError (exit 4) before any change."""
        run_id = validate_run_id(run_id) if run_id else new_run_id(self.now())
        change = self.change
        gates = [window_gate(change, self.now())]
        enforce(gates, self.progress)
        lease = LeaseManager(self.state_dir, change.cluster, ttl_s=self.lease_ttl_s)
        acquired = lease.acquire(run_id, change.change_id)  # before any platform call
        try:
            snap, plan = self._snapshot()
            gates += cluster_gates(snap, change, plan, bind=bind)
            enforce(gates[1:], self.progress)
        except BaseException:
            lease.release()
            self.close()
            raise
        return self._execute(run_id, None, snap, plan, lease, gates, None,
                             took_over=acquired.took_over.run_id if acquired.took_over else None)

    def resume(self, run_id: str, *, new_run: str | None = None) -> PatchOutcome:
        """Continue a crashed or halted run under a new run id linked to it."""
        run_id = validate_run_id(run_id)
        chain = journal_chain(self.state_dir, run_id)
        state = replay(chain)
        begin = state.begin
        if begin.get("change_id") != self.change.change_id:
            raise BadInputError(
                f"run {run_id} is change {begin.get('change_id')}, not {self.change.change_id}"
            )
        if begin.get("change_digest") != self.change.digest:
            raise BadInputError(
                f"the change file differs from the one run {run_id} started with "
                f"(digest {str(begin.get('change_digest'))[:16]}, now {self.change.digest[:16]})"
            )
        if state.finished:
            raise BadInputError(f"run {run_id} finished; there is nothing to resume")
        new_id = validate_run_id(new_run) if new_run else new_run_id(self.now())
        change = self.change
        gates = [window_gate(change, self.now())]
        enforce(gates, self.progress)
        lease = LeaseManager(self.state_dir, change.cluster, ttl_s=self.lease_ttl_s)
        acquired = lease.acquire(new_id, change.change_id, resume_of=run_id)
        try:
            current = self._current_host(state)
            committed = {h: f"committed by run {self._committed_by(chain, h)}"
                         for h in state.committed}
            snap, plan = self._snapshot(current=current, committed=committed)
            explained = [current] if current and state.progress(current).in_maintenance_by_run else []
            gates += cluster_gates(snap, change, plan, explained_maintenance=explained)
            enforce(gates[1:], self.progress)
        except BaseException:
            lease.release()
            self.close()
            raise
        return self._execute(new_id, run_id, snap, plan, lease, gates, state,
                             took_over=acquired.took_over.run_id if acquired.took_over else None)

    @staticmethod
    def _current_host(state: JournalState) -> str | None:
        for host, progress in state.hosts.items():
            if host.startswith("cluster:"):
                continue  # the cluster-wide requalification after the last host
            if progress.begun and not progress.committed and not progress.skipped:
                return host
        return None

    @staticmethod
    def _committed_by(chain: Sequence[Sequence[Mapping[str, Any]]], host: str) -> str:
        for events in chain:
            for e in events:
                if e.get("event") == "host.committed" and e.get("host") == host:
                    return str(events[0].get("run_id"))
        return "?"

    # -- the run ----------------------------------------------------------------------------

    def _execute(
        self, run_id: str, resumed_from: str | None, snap: Any, plan: Any, lease: LeaseManager,
        gates: list[Gate], prior: JournalState | None, *, took_over: str | None,
    ) -> PatchOutcome:
        change = self.change
        self._run_id = run_id
        work = [
            HostWork(hp.host, tuple((m.vm, m.destination) for m in hp.moves), tuple(hp.stops))
            for hp in plan.order
        ]
        outcome = PatchOutcome(
            status="running", run_id=run_id, change_id=change.change_id, exit_code=EXIT_OK,
            plan_digest=plan.digest, gates=[g.to_json() for g in gates], resumed_from=resumed_from,
        )
        all_hosts = [h.name for h in snap.hosts]
        # A host whose requalification the resumed run already finished keeps its results in
        # that run's bundle; this run does not requalify it again, so it plans no tests for it.
        requalified = STEPS.index("requalify")
        planned = self.requalifier.planned(
            [w.host for w in work
             if prior is None or prior.progress(w.host).last_done_index < requalified],
            change.cluster,
        )
        try:
            self._journal = Journal.create(self.state_dir, run_id, on_append=self.fault.after_line)
            if self.evidence is not None:
                outcome.bundle = self.evidence.start(
                    run_id=run_id, change=change,
                    plan={"digest": plan.digest, "order": [w.to_json() for w in work],
                          "skipped": [{"host": s.host, "reason": s.reason} for s in plan.skipped],
                          "gates": [g.to_json() for g in gates]},
                    hosts=all_hosts, planned=planned,
                    executor={"name": self.executor.name,
                              "stand_in": bool(getattr(self.executor, "stand_in", False))},
                    resumed_from=resumed_from, inventory=snap.to_json(),
                )
            self._journal.append(
                "run.begin", run_id=run_id, change_id=change.change_id,
                change_digest=change.digest, cluster=change.cluster, plan_digest=plan.digest,
                resumed_from=resumed_from, lease_taken_from=took_over,
                order=[w.to_json() for w in work],
                skipped=[{"host": s.host, "reason": s.reason} for s in plan.skipped],
                bundle=str(outcome.bundle) if outcome.bundle else None,
            )
            lease.start_heartbeat()
            for skip in plan.skipped:
                self._skip(skip.host, skip.reason, outcome)
            hosts_done: list[str] = []
            for item in work:
                progress = prior.progress(item.host) if prior is not None else HostProgress(item.host)
                if self._host(item, progress):
                    outcome.committed.append(item.host)
                else:
                    outcome.skipped.append({"host": item.host, "reason": "already at the target"})
                hosts_done.append(item.host)
            self._cluster_requalification(all_hosts, outcome)
        except (StepFailed, PlatformError) as exc:
            return self._halt(exc, outcome, lease)
        except BaseException:
            # KeyboardInterrupt and bugs: the run is resumable; the lease stays until its
            # heartbeat expires or --resume takes it over. Before the first step nothing
            # changed: the lease goes at once.
            if self._journal is None or self._journal.lines_written <= 1 + len(plan.skipped):
                lease.release()
            lease.stop_heartbeat()
            if self.evidence is not None:
                self.evidence.close()
            if self._journal is not None:
                self._journal.close()
            self.close()
            raise
        assert self._journal is not None
        if self.evidence is not None:
            outcome.seal = self.evidence.finish("not run")
            self._take_verdict(outcome)
        lease.release()
        # Last: a crash before this line leaves a run that --resume finishes (nothing to redo).
        self._journal.append("run.done", run_id=run_id, seal=outcome.seal)
        self._journal.close()
        self.close()
        outcome.status = "done"
        outcome.exit_code = (
            exit_code_for_verdict(outcome.verdict) if outcome.verdict is not None else EXIT_OK
        )
        self.progress(f"done: {len(outcome.committed)} hosts patched, "
                      f"{len(outcome.skipped)} skipped; plan {plan.digest[:16]}"
                      + (f"; verdict {outcome.verdict}" if outcome.verdict else ""))
        return outcome

    def _take_verdict(self, outcome: PatchOutcome) -> None:
        """The sealed bundle's verdict and counts onto the outcome."""
        assert self.evidence is not None
        outcome.verdict = self.evidence.verdict
        outcome.counts = dict(self.evidence.counts)

    def _skip(self, host: str, reason: str, outcome: PatchOutcome | None) -> None:
        """Journal, record and report a skipped host; ``outcome`` None: the caller lists it."""
        assert self._journal is not None
        self._journal.append("host.skipped", host=host, reason=reason)
        if self.evidence is not None:
            self.evidence.host_skipped(host, reason)
        if outcome is not None:
            outcome.skipped.append({"host": host, "reason": reason})
        self.progress(f"{host}: skipped: {reason}")

    def _halt(self, exc: VqualError, outcome: PatchOutcome, lease: LeaseManager) -> PatchOutcome:
        host = getattr(exc, "host", None) or exc.where or "?"
        step = str(getattr(exc, "step", None) or self._current_step)
        reason = str(getattr(exc, "reason", None) or exc.one_line())
        state = None
        try:
            state = self._observe(host) if host != "?" and not host.startswith("cluster:") else None
        except VqualError:
            state = None
        deviation = {"step": step, "target": host, "reason": reason, "run_id": self._run_id,
                     "test_id": None}
        platform_failed = isinstance(exc, PlatformError) and not isinstance(exc, InjectedFault)
        assert self._journal is not None
        self._journal.append("step.failed", host=host, step=step, reason=reason)
        if self.evidence is not None:
            self.evidence.deviation(step=step, target=host, reason=reason, run_id=self._run_id,
                                    state=state, verdict="error" if platform_failed else "fail")
            outcome.seal = self.evidence.finish(f"the run halted at {host} {step}")
            self._take_verdict(outcome)
        lease.release()
        self._journal.append("run.halted", run_id=self._run_id, host=host, step=step,
                             reason=reason, seal=outcome.seal)
        self._journal.close()
        self.close()
        outcome.status = "halted"
        outcome.deviation = deviation
        if outcome.verdict is not None:
            outcome.exit_code = exit_code_for_verdict(outcome.verdict)
        else:
            outcome.exit_code = EXIT_PLATFORM if platform_failed else EXIT_FAILED
        self.progress(f"{host}: {step}: HALTED: {reason}")
        return outcome

    # -- one host ---------------------------------------------------------------------------

    def _observe(self, host: str, *, vms: bool = True) -> dict[str, Any]:
        """The host's state as the platform reports it: maintenance and (``vms``) its VMs."""
        def read() -> dict[str, Any]:
            facts = {h.name: h for h in self.platform.hosts()}
            if host not in facts:
                raise PlatformError(f"host {host} is not listed by the platform")
            state: dict[str, Any] = {"in_maintenance": facts[host].in_maintenance}
            if vms:
                state.update(self._vms_on(host))
            return state
        state = self._read(f"state of {host}", read)
        self._last[host] = state
        return state

    def _vms_on(self, host: str) -> dict[str, list[str]]:
        found = self._read(f"VMs of {host}", self.platform.vms)
        return {
            "running_vms": sorted(v.name for v in found if v.host == host
                                  and v.power_state in _HELD),
            "stopped_vms": sorted(v.name for v in found if v.host == host
                                  and v.power_state not in _HELD),
        }

    def _host(self, item: HostWork, progress: HostProgress) -> bool:
        """Patch one host; False if it turned out to be at the target already (skipped)."""
        assert self._journal is not None
        host = item.host
        start = progress.last_done_index + 1
        # Resume: a step begun but not done counts as done only if its post-condition holds.
        while start < len(STEPS) and STEPS[start] in progress.begun:
            step = STEPS[start]
            held, observed = self._post(step, item, resumed=True)
            if not held:
                break
            self._journal.append("step.done", host=host, step=step, verified_on_resume=True)
            if self.evidence is not None:
                self.evidence.action(f"patch.{step}", host, before=None, after=observed,
                                     verdict="pass", started=utc_now_text(),
                                     reason="post-condition held when the run was resumed")
            self.progress(f"{host}: {step}: held on resume")
            start += 1
        for step in STEPS[start:]:
            self._current_step = step
            self._journal.append("step.begin", host=host, step=step)
            self.progress(f"{host}: {step}")
            started = utc_now_text()
            before = self._last.get(host)
            try:
                self.fault.before_operation(host, step)
                detail = getattr(self, f"_step_{step}")(item)
            except StepFailed:
                raise
            except VqualError as exc:
                raise StepFailed(host, step, exc.one_line()) from exc
            self.fault.after_operation(host, step)
            if detail is _AT_TARGET:
                self._journal.append("step.done", host=host, step=step, at_target=True)
                self._skip(host, "already at the change's target (installed read from the "
                           f"{self.executor.name} executor)", None)
                return False
            held, observed = self._post(step, item)
            if not held:
                raise StepFailed(host, step, f"post-condition did not hold: {observed}")
            if self.evidence is not None:
                self.evidence.action(f"patch.{step}", host, before=before, after=observed,
                                     verdict="pass", reason=None, started=started,
                                     detail=detail if isinstance(detail, dict) else None)
                self.evidence.sync()
            self._journal.append("step.done", host=host, step=step)
        self._journal.append("host.committed", host=host)
        self.progress(f"{host}: committed")
        return True

    # -- steps: each returns what it did; _post reads the post-condition back ----------------

    def _step_recheck(self, item: HostWork) -> Any:
        facts = {h.name: h for h in self._read("hosts", self.platform.hosts)}
        if item.host not in facts:
            raise StepFailed(item.host, "recheck", "the platform no longer lists the host")
        if facts[item.host].in_maintenance:
            raise StepFailed(item.host, "recheck", "the host is in maintenance already")
        installed = self._read("installed", lambda: self.executor.installed(item.host))
        if not target_mismatches(installed, self.change):
            return _AT_TARGET
        out_of_service = [n for n, f in facts.items() if f.in_maintenance
                          and self.change.exclusion(n) is None]
        if out_of_service:
            raise StepFailed(item.host, "recheck",
                             f"another host is out of service: {', '.join(out_of_service)}")
        on_host = self._vms_on(item.host)
        state: dict[str, Any] = {"in_maintenance": False, **on_host}
        self._last[item.host] = state
        planned = {vm for vm, _ in item.moves} | set(item.stops)
        unplanned = [vm for vm in on_host["running_vms"] if vm not in planned]
        if unplanned:
            raise StepFailed(item.host, "recheck",
                             f"running VMs the plan does not cover: {', '.join(unplanned)}")
        for vm, dest in item.moves:
            if dest not in facts or facts[dest].in_maintenance:
                raise StepFailed(item.host, "recheck", f"destination {dest} of {vm} is not in service")
        return {"installed": installed, **state}

    def _step_stop_placements(self, item: HostWork) -> Any:
        # vqual never places a VM on a draining host: the plan's destinations exclude it and
        # no other step starts VMs there. The platform itself is not told (see the docs).
        return {"draining": item.host, "destinations": sorted({d for _, d in item.moves})}

    def _step_evacuate(self, item: HostWork) -> Any:
        timeout = self.change.migration_timeout_s
        results: dict[str, Any] = {}
        todo = []
        now = {v.name: v for v in self._read("VMs", self.platform.vms)}
        for vm, dest in item.moves:
            if vm not in now:
                raise StepFailed(item.host, "evacuate", f"VM {vm} is no longer listed")
            if now[vm].host == dest:
                results[vm] = {"destination": dest, "already_there": True}
            else:
                todo.append((vm, dest, now[vm].power_state in _HELD))
        with ThreadPoolExecutor(max_workers=max(self.change.max_parallel_migrations, 1),
                                thread_name_prefix="vqual-migrate") as pool:
            pending: dict[Future[Any], tuple[str, str, float]] = {}
            queue = list(todo)
            failure: str | None = None
            while (queue or pending) and failure is None:
                while queue and len(pending) < self.change.max_parallel_migrations:
                    vm, dest, live = queue.pop(0)
                    fut = pool.submit(self._migrate, vm, dest, live)
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
                raise StepFailed(item.host, "evacuate", failure)
        for vm in item.stops:
            t0 = time.monotonic()
            facts = self.platform.power_off(vm, graceful=True,
                                            timeout_s=min(self.change.step_timeout_s, 300.0))
            self._stopped_at[vm] = time.monotonic()
            results[vm] = {"stopped": True, "power_state": facts.power_state,
                           "seconds": round(time.monotonic() - t0, 3)}
        return results

    def _migrate(self, vm: str, dest: str, live: bool) -> float:
        platform = self._worker_platform()
        t0 = time.monotonic()
        platform.migrate_vm(vm, dest, live=live)
        return time.monotonic() - t0

    def _step_verify_empty(self, item: HostWork) -> Any:
        return None

    def _step_enter_maintenance(self, item: HostWork) -> Any:
        return {"in_maintenance": self.platform.enter_maintenance(item.host).in_maintenance}

    def _step_patch(self, item: HostWork) -> Any:
        before = self._read("installed", lambda: self.executor.installed(item.host))
        if not target_mismatches(before, self.change):
            # A resumed run whose patch went through before the crash: never patch twice.
            return {"before": before, "applied": None, "reason": "already at the target"}
        applied = self.executor.apply(item.host, self.change)
        return {"before": before, "applied": applied}

    def _step_reboot(self, item: HostWork) -> Any:
        seconds = self.executor.reboot(item.host, self.change.step_timeout_s)
        return {"seconds": round(seconds, 3), "executor": self.executor.name}

    def _step_requalify(self, item: HostWork) -> Any:
        started = utc_now_text()
        ctx = RequalifyContext(platform=self.platform, executor=self.executor, change=self.change,
                               run_id=self._run_id, risk=self.change.risk)
        outcome = self.requalifier.requalify(item.host, ctx)
        if self.evidence is not None:
            self.evidence.results(outcome.results)
            if outcome.reference is not None:
                self.evidence.reference(item.host, outcome.reference, started)
        if not outcome.passed:
            raise StepFailed(item.host, "requalify", "; ".join(outcome.failures()))
        return {"results": {r["test_id"]: r["verdict"] for r in outcome.results},
                "reference": outcome.reference}

    def _step_leave_maintenance(self, item: HostWork) -> Any:
        return {"in_maintenance": self.platform.exit_maintenance(item.host).in_maintenance}

    def _step_health_check(self, item: HostWork) -> Any:
        health = self._read("health", lambda: self.executor.health(item.host))
        if not health.get("ok"):
            raise StepFailed(item.host, "health_check", f"the host is not healthy: {health}")
        restarted: dict[str, Any] = {}
        over: list[str] = []
        for vm in item.stops:
            facts = self.platform.vm(vm)
            if facts.power_state != RUNNING:
                facts = self.platform.power_on(vm)
            stopped = self._stopped_at.pop(vm, None)
            # None: stopped by the run this one resumed; its downtime is not known here.
            down = round(time.monotonic() - stopped, 3) if stopped is not None else None
            restarted[vm] = {"power_state": facts.power_state, "downtime_s": down}
            approval = self.change.stop_approval(vm)
            if down is not None and approval is not None and down > approval.max_downtime_s:
                over.append(f"{vm} was down {down:g} s, approved {approval.max_downtime_s:g} s")
        if over:
            raise StepFailed(item.host, "health_check", "; ".join(over))
        return {"health": health, "restarted": restarted}

    def _step_commit(self, item: HostWork) -> Any:
        return None

    def _post(self, step: str, item: HostWork, *, resumed: bool = False) -> tuple[bool, Any]:
        """Whether ``step``'s post-condition holds now, and what was read."""
        host = item.host
        if step in ("recheck", "stop_placements", "commit"):
            # Nothing on the platform to read back; on resume they run again (reads only).
            return (not resumed), self._last.get(host)
        if step == "evacuate":
            now = {v.name: v for v in self._read("VMs", self.platform.vms)}
            placed = {vm: now[vm].host if vm in now else None for vm, _ in item.moves}
            wrong = [vm for vm, dest in item.moves if placed[vm] != dest]
            stops = {vm: now[vm].power_state if vm in now else None for vm in item.stops}
            running = [vm for vm, s in stops.items() if s in _HELD]
            return not wrong and not running, {"placed": placed, "stops": stops}
        if step == "verify_empty":
            state = {**self._last.get(host, {}), **self._vms_on(host)}
            self._last[host] = state
            return not state["running_vms"], state
        if step == "enter_maintenance":
            state = self._observe(host)
            return state["in_maintenance"] and not state["running_vms"], state
        if step == "patch":
            installed = self._read("installed", lambda: self.executor.installed(host))
            missing = target_mismatches(installed, self.change)
            return not missing, {"installed": installed, "missing": missing}
        if step == "reboot":
            if resumed:
                return False, None  # cannot tell whether the restart happened: do it again
            health = self._read("health", lambda: self.executor.health(host))
            return bool(health.get("ok")), {"health": health}
        if step == "requalify":
            return (not resumed), None  # a resumed run requalifies again
        if step == "leave_maintenance":
            state = self._observe(host, vms=False)
            return not state["in_maintenance"], state
        if step == "health_check":
            if resumed:
                return False, None
            state = self._observe(host, vms=bool(item.stops))
            down = [vm for vm in item.stops if vm not in state.get("running_vms", [])]
            return not down and not state["in_maintenance"], state
        raise BadInputError(f"unknown step {step}")

    def _cluster_requalification(self, hosts: Sequence[str], outcome: PatchOutcome) -> None:
        assert self._journal is not None
        target = f"cluster:{self.change.cluster}"
        usable = [h for h in hosts if self.change.exclusion(h) is None]
        self._current_step = "homogeneity"
        self._journal.append("step.begin", host=target, step="homogeneity")
        ctx = RequalifyContext(platform=self.platform, executor=self.executor, change=self.change,
                               run_id=self._run_id, risk=self.change.risk)
        result = self.requalifier.requalify_cluster(usable, ctx)
        if self.evidence is not None:
            self.evidence.results(result.results)
        if not result.passed:
            raise StepFailed(target, "homogeneity", "; ".join(result.failures()))
        self._journal.append("step.done", host=target, step="homogeneity")
        self.progress(f"{target}: homogeneity: pass")


class _AtTarget:
    pass


_AT_TARGET = _AtTarget()


__all__ = [
    "EXIT_BAD_INPUT",
    "FaultInjector",
    "HostWork",
    "InjectedFault",
    "Orchestrator",
    "PatchOutcome",
    "StepFailed",
]
