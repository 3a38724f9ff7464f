"""The rolling-patch orchestrator: a journaled per-host state machine (docs/rolling-patch.md).

``Orchestrator.run()`` checks the gates (reads only), takes the cluster lease, then patches the
plan's hosts one at a time, walking :data:`~qualification.rollout.steps.STEP_TABLE`. Each step
is journaled (``step.begin``, fsynced) before it runs and marked done (``step.done``) only after
its post-condition was read back from the platform. ``Orchestrator.resume(run_id)`` starts a
new run linked to a crashed or halted one written with the same steps version.

Failure policy: halt at the first failure, roll nothing back. Before ``enter_maintenance`` the
VMs stay where they are; after it the host stays in maintenance and empty. Only reads retry.
Every wait is bounded (migration and step timeouts from the change). A ``deviation.raised``
record names the failed step, the host and the reason.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from qualification import __version__
from qualification.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PLATFORM,
    BadInputError,
    PlatformError,
    VqualError,
    exit_code_for_verdict,
)
from qualification.platforms.base import HypervisorPlatform
from qualification.platforms.patching import PatchExecutor
from qualification.rollout.change import RolloutChange
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.gates import Gate, cluster_gates, enforce, window_gate
from qualification.rollout.journal import (
    HostProgress,
    Journal,
    JournalState,
    check_steps_version,
    journal_chain,
    replay,
)
from qualification.rollout.lease import LeaseManager
from qualification.rollout.requalify import Requalifier
from qualification.rollout.steps import (
    AT_TARGET,
    STEP_TABLE,
    STEPS,
    STEPS_VERSION,
    HostWork,
    Step,
    StepContext,
    StepFailed,
)
from qualification.spec.change import validate_run_id
from qualification.timeutil import new_run_id, utc_now, utc_now_text
from qualification.verdict import VERDICTS

if TYPE_CHECKING:
    from qualification.rollout.inventory import SitePlacement


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


def resumable(state_dir: Path, run_id: str, change: RolloutChange
              ) -> tuple[list[list[dict[str, Any]]], JournalState]:
    """The journal chain of ``run_id`` and its replay, if this vqual may resume it with
    ``change``; reads only the journals (the CLI asks before it opens the signing key).

    Raises:
        BadInputError: no such run, a finished run, a journal of another steps version, or
            another change or change file (exit 2; nothing was executed).
    """
    chain = journal_chain(state_dir, validate_run_id(run_id))
    state = replay(chain)
    if state.finished:
        raise BadInputError(f"run {run_id} finished; there is nothing to resume")
    check_steps_version(chain, run_id)
    begin = state.begin
    if begin.get("change_id") != change.change_id:
        raise BadInputError(f"run {run_id} is change {begin.get('change_id')}, not {change.change_id}")
    if begin.get("change_digest") != change.digest:
        raise BadInputError(
            f"the change file differs from the one run {run_id} started with "
            f"(digest {str(begin.get('change_digest'))[:16]}, now {change.digest[:16]})"
        )
    return chain, state


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
        placement: the inventory's fire compartments and HA pairs for the planner.
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
        placement: SitePlacement | None = None,
    ) -> None:
        self.executor = executor
        self.placement = placement
        self.requalifier = requalifier
        self.change = change
        self.state_dir = Path(state_dir)
        self.evidence = evidence
        self.fault = fault or FaultInjector()
        self.progress = progress or (lambda _line: None)
        self.lease_ttl_s = lease_ttl_s
        self.now = now
        # What the steps act through and share: platform sessions, the last state per host.
        self.ctx = StepContext(platform_factory, executor, requalifier, change, evidence,
                               read_retries)
        self._journal: Journal | None = None
        self._current_step = "gates"

    @property
    def platform(self) -> HypervisorPlatform:
        return self.ctx.platform

    def close(self) -> None:
        self.ctx.close()

    def _snapshot(self, *, current: str | None = None, committed: Mapping[str, str] | None = None
                  ) -> tuple[Any, Any]:
        from qualification.rollout.inventory import snapshot
        from qualification.rollout.planner import plan_rollout

        snap = self.ctx.read("cluster", lambda: snapshot(
            self.platform, self.change.cluster, self.change, installed=self.executor.installed,
            placement=self.placement))
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
        chain, state = resumable(self.state_dir, run_id, self.change)
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
        self.ctx.run_id = run_id
        work = [
            HostWork(hp.host, tuple((m.vm, m.destination) for m in hp.moves), tuple(hp.stops))
            for hp in plan.order
        ]
        outcome = PatchOutcome(
            status="running", run_id=run_id, change_id=self.change.change_id, exit_code=EXIT_OK,
            plan_digest=plan.digest, gates=[g.to_json() for g in gates], resumed_from=resumed_from,
        )
        try:
            self._journal = Journal.create(self.state_dir, run_id, on_append=self.fault.after_line)
            self._begin(outcome, snap, plan, gates, work, prior, took_over)
            lease.start_heartbeat()
            for skip in plan.skipped:
                self._skip(skip.host, skip.reason, outcome)
            for item in work:
                progress = prior.progress(item.host) if prior is not None else HostProgress(item.host)
                if self._host(item, progress):
                    outcome.committed.append(item.host)
                else:
                    outcome.skipped.append({"host": item.host, "reason": "already at the target"})
            self._cluster_requalification([h.name for h in snap.hosts], outcome)
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
        return self._finish(outcome, lease)

    def _begin(self, outcome: PatchOutcome, snap: Any, plan: Any, gates: list[Gate],
               work: list[HostWork], prior: JournalState | None, took_over: str | None) -> None:
        """Start the bundle (``run.start``) and journal ``run.begin`` with the steps version."""
        assert self._journal is not None and outcome.run_id is not None
        change = self.change
        if self.evidence is not None:
            # A host whose requalification the resumed run already finished keeps its results
            # in that run's bundle; this run does not requalify it again, so plans no tests.
            requalified = STEPS.index("requalify")
            planned = self.requalifier.planned(
                [w.host for w in work
                 if prior is None or prior.progress(w.host).last_done_index < requalified],
                change.cluster,
            )
            outcome.bundle = self.evidence.start(
                run_id=outcome.run_id, change=change,
                plan={"digest": plan.digest, "order": [w.to_json() for w in work],
                      "skipped": [{"host": s.host, "reason": s.reason} for s in plan.skipped],
                      "gates": [g.to_json() for g in gates]},
                hosts=[h.name for h in snap.hosts], planned=planned,
                executor={"name": self.executor.name,
                          "stand_in": bool(getattr(self.executor, "stand_in", False))},
                resumed_from=outcome.resumed_from, inventory=snap.to_json(),
            )
        self._journal.append(
            "run.begin", run_id=outcome.run_id, change_id=change.change_id,
            change_digest=change.digest, cluster=change.cluster, plan_digest=plan.digest,
            resumed_from=outcome.resumed_from, lease_taken_from=took_over,
            order=[w.to_json() for w in work],
            skipped=[{"host": s.host, "reason": s.reason} for s in plan.skipped],
            bundle=str(outcome.bundle) if outcome.bundle else None,
            steps_version=STEPS_VERSION, vqual_version=__version__,
        )

    def _finish(self, outcome: PatchOutcome, lease: LeaseManager) -> PatchOutcome:
        """Seal the bundle, release the lease, journal ``run.done``: the run is done."""
        assert self._journal is not None
        if self.evidence is not None:
            outcome.seal = self.evidence.finish("not run")
            self._take_verdict(outcome)
        lease.release()
        # Last: a crash before this line leaves a run that --resume finishes (nothing to redo).
        self._journal.append("run.done", run_id=outcome.run_id, seal=outcome.seal)
        self._journal.close()
        self.close()
        outcome.status = "done"
        outcome.exit_code = (
            exit_code_for_verdict(outcome.verdict) if outcome.verdict is not None else EXIT_OK
        )
        self.progress(f"done: {len(outcome.committed)} hosts patched, "
                      f"{len(outcome.skipped)} skipped; plan {str(outcome.plan_digest)[:16]}"
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
            state = self.ctx.observe(host) if host != "?" and not host.startswith("cluster:") else None
        except VqualError:
            state = None
        deviation = {"step": step, "target": host, "reason": reason, "run_id": self.ctx.run_id,
                     "test_id": None}
        platform_failed = isinstance(exc, PlatformError) and not isinstance(exc, InjectedFault)
        assert self._journal is not None
        self._journal.append("step.failed", host=host, step=step, reason=reason)
        if self.evidence is not None:
            self.evidence.deviation(step=step, target=host, reason=reason, run_id=self.ctx.run_id,
                                    state=state, verdict="error" if platform_failed else "fail")
            outcome.seal = self.evidence.finish(f"the run halted at {host} {step}")
            self._take_verdict(outcome)
        lease.release()
        self._journal.append("run.halted", run_id=self.ctx.run_id, host=host, step=step,
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

    def _host(self, item: HostWork, progress: HostProgress) -> bool:
        """Patch one host through :data:`STEP_TABLE`; False if it turned out to be at the
        target already (skipped)."""
        assert self._journal is not None
        host = item.host
        for step in STEP_TABLE[self._held_on_resume(item, progress):]:
            self._current_step = step.name
            self._journal.append("step.begin", host=host, step=step.name)
            self.progress(f"{host}: {step.name}")
            started = utc_now_text()
            before = self.ctx.last.get(host)
            detail = self._act(step, item)
            if detail is AT_TARGET:
                self._journal.append("step.done", host=host, step=step.name, at_target=True)
                self._skip(host, "already at the change's target (installed read from the "
                           f"{self.executor.name} executor)", None)
                return False
            held, observed = step.post(self.ctx, item)
            if not held:
                raise StepFailed(host, step.name, f"post-condition did not hold: {observed}")
            if self.evidence is not None:
                self.evidence.action(f"patch.{step.name}", host, before=before, after=observed,
                                     verdict="pass", reason=None, started=started,
                                     detail=detail if isinstance(detail, dict) else None)
                self.evidence.sync()
            self._journal.append("step.done", host=host, step=step.name)
        self._journal.append("host.committed", host=host)
        self.progress(f"{host}: committed")
        return True

    def _act(self, step: Step, item: HostWork) -> Any:
        """The step's action between the fault hooks; any domain error fails the step."""
        try:
            self.fault.before_operation(item.host, step.name)
            detail = step.action(self.ctx, item)
        except StepFailed:
            raise
        except VqualError as exc:
            raise StepFailed(item.host, step.name, exc.one_line()) from exc
        self.fault.after_operation(item.host, step.name)
        return detail

    def _held_on_resume(self, item: HostWork, progress: HostProgress) -> int:
        """Where the host's steps start: after the last step done and after each step begun
        but not done whose post-condition holds now, unless that step re-runs on resume."""
        assert self._journal is not None
        start = progress.last_done_index + 1
        while start < len(STEP_TABLE) and STEP_TABLE[start].name in progress.begun:
            step = STEP_TABLE[start]
            if step.rerun_on_resume:
                break
            held, observed = step.post(self.ctx, item)
            if not held:
                break
            self._journal.append("step.done", host=item.host, step=step.name,
                                 verified_on_resume=True)
            if self.evidence is not None:
                self.evidence.action(f"patch.{step.name}", item.host, before=None, after=observed,
                                     verdict="pass", started=utc_now_text(),
                                     reason="post-condition held when the run was resumed")
            self.progress(f"{item.host}: {step.name}: held on resume")
            start += 1
        return start

    def _cluster_requalification(self, hosts: Sequence[str], outcome: PatchOutcome) -> None:
        assert self._journal is not None
        target = f"cluster:{self.change.cluster}"
        usable = [h for h in hosts if self.change.exclusion(h) is None]
        self._current_step = "homogeneity"
        self._journal.append("step.begin", host=target, step="homogeneity")
        result = self.requalifier.requalify_cluster(usable, self.ctx.requalify_context())
        if self.evidence is not None:
            self.evidence.results(result.results)
        if not result.passed:
            raise StepFailed(target, "homogeneity", "; ".join(result.failures()))
        self._journal.append("step.done", host=target, step="homogeneity")
        self.progress(f"{target}: homogeneity: pass")


__all__ = [
    "EXIT_BAD_INPUT",
    "FaultInjector",
    "HostWork",
    "InjectedFault",
    "Orchestrator",
    "PatchOutcome",
    "StepFailed",
]
