"""The evidence bundle of one rolling-patch run: ``evidence/<change>/<run id>/``.

Written through :class:`~qualification.evidence.bundle.BundleWriter` (the same chain, signing,
manifest and seal as a qualification run; ``vqual verify`` reads it): ``run.start`` with mode
``patch``, the change file sealed as ``data/change.yaml``, one ``action`` per step with the
state before and after, ``host.skipped``, ``deviation.raised``, the requalification's
``check.result`` records (or the seal of a separate qualify bundle), ``run.end``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.config import config_citation
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.kinds import (
    ACTION,
    CHECK_RESULT,
    DEVIATION_RAISED,
    HOST_SKIPPED,
    RUN_START,
)
from qualification.execution.recorder import overall_verdict, records_as_dicts
from qualification.execution.run_start import run_start_data
from qualification.rollout.change import RolloutChange
from qualification.signing import Signer
from qualification.state import trust_digest
from qualification.timeutil import utc_now_text
from qualification.verdict import Verdict, zero_counts


class PatchEvidence:
    """Writes the bundle of one patch run (one per run id; a resumed run writes its own)."""

    def __init__(
        self, evidence_root: Path, signer: Signer, initiator: str, *, state_dir: Path
    ) -> None:
        self.evidence_root = Path(evidence_root)
        self.signer = signer
        self.initiator = initiator
        self.state_dir = Path(state_dir)
        self.writer: BundleWriter | None = None
        self.counts = zero_counts()
        self.planned: list[dict[str, str]] = []
        self._pending: dict[tuple[str, str], dict[str, str]] = {}
        self.halted = False
        self.halt_verdict: str = Verdict.FAIL.value
        #: The sealed bundle's overall verdict (``run.end``), once :meth:`finish` ran.
        self.verdict: str | None = None

    @property
    def path(self) -> Path | None:
        return self.writer.path if self.writer else None

    def start(
        self,
        *,
        run_id: str,
        change: RolloutChange,
        plan: Mapping[str, Any],
        hosts: Sequence[str],
        planned: Sequence[Mapping[str, str]],
        executor: Mapping[str, Any],
        resumed_from: str | None,
        inventory: Mapping[str, Any],
    ) -> Path:
        """Open the bundle and write ``run.start`` (mode ``patch``) and the sealed inputs."""
        from qualification.review.signed import load_trust_versioned

        change_bytes = Path(change.path).read_bytes()
        trust, trust_version = load_trust_versioned(self.state_dir)  # judged as for qualify
        writer = BundleWriter.create(
            self.evidence_root, change.change_id, run_id, self.signer, self.initiator
        )
        self.writer = writer
        writer.tsa = trust.tsa  # run.end gets a token from the store's TSA
        self.planned = [dict(p) for p in planned]
        self._pending = {(p["test_id"], p["target"]): dict(p) for p in self.planned}
        inventory_bytes = canonical_bytes(dict(inventory))
        spec: dict[str, Any] | None = None
        req = change.requalify
        if req is not None and Path(req.spec).is_file():
            spec_bytes = Path(req.spec).read_bytes()
            spec = {"path": str(req.spec), "digest": hashlib.sha256(spec_bytes).hexdigest()}
        start = run_start_data(
            mode="patch",
            spec=spec,
            data_files=[
                {"name": "change.yaml", "path": "data/change.yaml", "digest": change.digest}
            ],
            inventory_digest=hashlib.sha256(inventory_bytes).hexdigest(),
            trust={"digest": trust_digest(self.state_dir), "version": trust_version},
            targets=[
                {"name": h, "kinds": ["host"], "risk": change.risk,
                 "risk_reason": "the change's risk"}
                for h in hosts
            ],
            planned=self.planned,
            prev_run_seal=latest_seal(self.evidence_root, change.change_id),
            approval=None,
            config=config_citation(self.state_dir),
        )
        start["patch"] = {
            "change": {"id": change.change_id, "title": change.title,
                       "path": str(change.path), "digest": change.digest,
                       "target": change.target.to_json(), "risk": change.risk,
                       "canary_vm": change.canary_vm,
                       "canary_waiver": (change.canary_waiver.to_json()
                                         if change.canary_waiver else None)},
            "cluster": change.cluster,
            "plan": dict(plan),
            "executor": dict(executor),
            "resumed_from": resumed_from,
        }
        writer.append(RUN_START, start)
        if writer.files.get("data/change.yaml") is None:
            writer.add_file("data/change.yaml", change_bytes)
        writer.add_file("inventory.json", inventory_bytes)
        if spec is not None and req is not None:
            writer.add_file("spec.yaml", Path(req.spec).read_bytes())
        writer.sync()
        return writer.path

    def _append(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.writer is not None:
            self.writer.append(kind, dict(data))

    def action(
        self, name: str, target: str, *, before: Any, after: Any, verdict: str,
        reason: str | None, started: str, finished: str | None = None, **extra: Any,
    ) -> None:
        self._append(ACTION, {
            "name": name, "target": target, "before": before, "after": after,
            "verdict": verdict, "reason": reason, "started": started,
            "finished": finished or utc_now_text(), **extra,
        })

    def host_skipped(self, target: str, reason: str) -> None:
        self._append(HOST_SKIPPED, {"target": target, "reason": reason})

    def deviation(self, *, step: str, target: str, reason: str, run_id: str,
                  test_id: str | None = None, state: Any = None, verdict: str = "fail") -> None:
        """``deviation.raised``: what failed, where, why (docs/formats.md).

        ``verdict`` is what the halt counts as in the run's overall verdict: ``fail``, or
        ``error`` when a platform error (not a failed step) halted the run.
        """
        self.halted = True
        self.halt_verdict = verdict
        self._append(DEVIATION_RAISED, {
            "test_id": test_id, "step": step, "target": target, "reason": reason,
            "run_id": run_id, "state": state,
        })

    def results(self, results: Sequence[Mapping[str, Any]]) -> None:
        for data in results:
            self._append(CHECK_RESULT, data)
            verdict = str(data["verdict"])
            self.counts[verdict] = self.counts.get(verdict, 0) + 1
            self._pending.pop((str(data["test_id"]), str(data["target"])), None)

    def reference(self, target: str, ref: Mapping[str, Any], started: str) -> None:
        """A separate qualify run's bundle, by its seal digest."""
        self.action("requalify.qualify_run", target, before=None, after=dict(ref),
                    verdict=str(ref.get("verdict")), reason=None, started=started)

    def sync(self) -> None:
        if self.writer is not None:
            self.writer.sync()

    def finish(self, not_run_reason: str) -> str | None:
        """Record planned tests without a result as ``not-executed``, render, seal."""
        writer = self.writer
        if writer is None:
            return None
        now = utc_now_text()
        leftovers: list[dict[str, Any]] = []
        for (test_id, target), planned in sorted(self._pending.items()):
            leftovers.append({
                "test_id": test_id, "title": test_id, "protocol": planned.get("protocol", "IQ"),
                "requirements": [], "target": target, "check": "rollout", "method": "",
                "expected": {}, "observed": None, "verdict": Verdict.NOT_EXECUTED.value,
                "reason": not_run_reason, "raw": None, "started": now, "finished": now,
                "duration_ms": 0.0,
            })
        self.results(leftovers)
        writer.sync()
        records = records_as_dicts(writer.path)
        try:
            from qualification.reports.html import render_report
            from qualification.reports.junit import render_junit

            writer.add_file("junit.xml", render_junit(records).encode("utf-8"))
            writer.add_file("report.html", render_report(records).encode("utf-8"))
        except (KeyError, TypeError, ValueError):
            pass  # a report that cannot render this run is rendered later by `vqual report`
        # A halt counts as one more result of its verdict: the worst of them all decides.
        verdict = overall_verdict(
            {**self.counts, self.halt_verdict: self.counts.get(self.halt_verdict, 0) + 1}
            if self.halted else self.counts
        )
        self.verdict = verdict
        executed = sum(v for k, v in self.counts.items() if k != Verdict.NOT_EXECUTED)
        seal = writer.seal(counts=self.counts, planned=len(self.planned), executed=executed,
                           verdict=verdict)
        self.writer = None
        return seal

    def close(self) -> None:
        """Stop writing without sealing (the run is resumable; the bundle stays incomplete)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
