"""The patch bundle: run.start mode patch with the sealed change file, actions, host.skipped,
deviation.raised, not-executed leftovers, sealed and verified like any bundle."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from qualification.evidence.verify import verify_bundle
from qualification.execution.keys import create_trusted_key
from qualification.execution.recorder import open_signer, records_as_dicts
from qualification.review.signed import load_trust
from qualification.rollout.change import (
    CanaryWaiver,
    ChangeTarget,
    ChangeWindow,
    RolloutChange,
)
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.requalify import PlatformRequalifier


def _setup(tmp_path: Path) -> tuple[PatchEvidence, RolloutChange, Path]:
    state = tmp_path / "state"
    create_trusted_key(state / "keys" / "executor.pem", state, name="CI", identity="ci@example.org",
                       roles=["executor"], passphrase=None, throwaway=True, valid_days=1)
    change_file = tmp_path / "change.yaml"
    change_file.write_bytes(b"apiVersion: vqual.change/v1\n# the bytes that are sealed\n")
    change = RolloutChange(
        change_id="CHG0000001", title="t", risk="high", cluster="c1",
        target=ChangeTarget(packages={"agent": "1.1"}),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)),
        digest="ab" * 32, path=change_file,
    )
    signer = open_signer(state / "keys" / "executor.pem")
    return PatchEvidence(tmp_path / "evidence", signer, "pipeline", state_dir=state), change, state


def test_a_halted_patch_run_seals_a_bundle_that_verifies(tmp_path: Path) -> None:
    ev, change, state = _setup(tmp_path)
    planned = PlatformRequalifier().planned(["h1", "h2"], "c1")
    bundle = ev.start(run_id="20260101T000000Z-abcdef", change=change,
                      plan={"digest": "cd" * 32, "order": []}, hosts=["h1", "h2", "h3"],
                      planned=planned, executor={"name": "x", "stand_in": True},
                      resumed_from=None, inventory={"cluster": "c1"})
    ev.host_skipped("h3", "excluded by the change: repair")
    ev.action("patch.enter_maintenance", "h1", before={"in_maintenance": False},
              after={"in_maintenance": True}, verdict="pass", reason=None,
              started="2026-01-01T00:00:00.000000Z")
    ev.deviation(step="patch", target="h1", reason="apt failed", run_id="20260101T000000Z-abcdef",
                 state={"in_maintenance": True, "running_vms": []})
    seal = ev.finish("the run halted at h1 patch")
    assert seal is not None
    result = verify_bundle(bundle, load_trust(state))
    assert result.status == "valid", result.problems
    assert result.verdict == "fail"
    recs = records_as_dicts(bundle)
    start = recs[0]["data"]
    assert start["mode"] == "patch"
    assert start["data_files"] == [{"name": "change.yaml", "path": "data/change.yaml",
                                    "digest": change.digest}]
    assert (bundle / "data" / "change.yaml").read_bytes() == change.path.read_bytes()
    kinds = [r["kind"] for r in recs]
    assert kinds.count("deviation.raised") == 1 and kinds.count("host.skipped") == 1
    dev = next(r["data"] for r in recs if r["kind"] == "deviation.raised")
    assert dev == {"test_id": None, "step": "patch", "target": "h1", "reason": "apt failed",
                   "run_id": "20260101T000000Z-abcdef",
                   "state": {"in_maintenance": True, "running_vms": []}}
    leftovers = [r["data"] for r in recs if r["kind"] == "check.result"]
    assert len(leftovers) == len(planned)
    assert {r["verdict"] for r in leftovers} == {"not-executed"}
    assert all(r["reason"] == "the run halted at h1 patch" for r in leftovers)


def test_a_run_closed_without_sealing_is_incomplete(tmp_path: Path) -> None:
    ev, change, state = _setup(tmp_path)
    bundle = ev.start(run_id="20260101T000000Z-000001", change=dataclasses.replace(change),
                      plan={"digest": "cd" * 32}, hosts=["h1"],
                      planned=PlatformRequalifier().planned(["h1"], "c1"),
                      executor={"name": "x", "stand_in": False}, resumed_from="R0",
                      inventory={})
    ev.close()
    result = verify_bundle(bundle, load_trust(state))
    assert result.status == "incomplete"
    assert records_as_dicts(bundle)[0]["data"]["patch"]["resumed_from"] == "R0"


def test_a_halt_counts_in_the_verdict_fail_for_a_step_error_for_the_platform(
        tmp_path: Path) -> None:
    ev, change, state = _setup(tmp_path)
    start = {"change": change, "plan": {"digest": "cd" * 32}, "hosts": ["h1"],
             "planned": PlatformRequalifier().planned(["h1"], "c1"),
             "executor": {"name": "x", "stand_in": True}, "resumed_from": None, "inventory": {}}
    # A requalification result that could not observe, then the step halts: fail wins.
    ev.start(run_id="20260101T000000Z-000002", **start)
    ev.results([{"test_id": "RP-IQ-01", "target": "h1", "verdict": "error", "reason": "x",
                 "title": "t", "protocol": "IQ", "requirements": [], "check": "rollout",
                 "method": "", "expected": {}, "observed": None, "raw": None,
                 "started": "2026-01-01T00:00:00.000000Z",
                 "finished": "2026-01-01T00:00:00.000000Z", "duration_ms": 0.0}])
    ev.deviation(step="requalify", target="h1", reason="RP-IQ-01 error", run_id="R2")
    ev.finish("the run halted at h1 requalify")
    assert ev.verdict == "fail"
    # A platform error halts the run: error, not fail (exit 4 as its bundle).
    ev2 = PatchEvidence(tmp_path / "evidence", ev.signer, "pipeline", state_dir=state)
    bundle = ev2.start(run_id="20260101T000000Z-000003", **start)
    ev2.deviation(step="evacuate", target="h1", reason="hosts() failed", run_id="R3",
                  verdict="error")
    ev2.finish("the run halted at h1 evacuate")
    assert ev2.verdict == "error"
    assert verify_bundle(bundle, load_trust(state)).verdict == "error"


def test_run_start_records_the_risk_the_canary_and_the_waiver(tmp_path: Path) -> None:
    ev, change, _state = _setup(tmp_path)
    waived = dataclasses.replace(change, canary_waiver=CanaryWaiver("no powered-off VM"))
    bundle = ev.start(run_id="20260101T000000Z-000004", change=waived,
                      plan={"digest": "cd" * 32}, hosts=["h1"], planned=[],
                      executor={"name": "x", "stand_in": True}, resumed_from=None, inventory={})
    ev.close()
    recorded = records_as_dicts(bundle)[0]["data"]["patch"]["change"]
    assert recorded["risk"] == "high" and recorded["canary_vm"] is None
    assert recorded["canary_waiver"] == {"reason": "no powered-off VM"}
