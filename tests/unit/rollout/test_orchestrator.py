"""Orchestrator decisions taken before the platform is touched, and the fault hooks.

The platform factory here fails the test if called: these refusals must come first. Runs
against a platform are in tests/integration/test_rolling_patch_vcsim.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from qualification.errors import BadInputError
from qualification.platforms.patching import target_mismatches
from qualification.platforms.vsphere.patch import VsphereStandInExecutor, mark_entry, parse_mark
from qualification.rollout.change import ChangeTarget, ChangeWindow, RolloutChange
from qualification.rollout.gates import GateRefused
from qualification.rollout.journal import Journal
from qualification.rollout.orchestrator import FaultInjector, InjectedFault, Orchestrator
from qualification.rollout.requalify import PlatformRequalifier
from qualification.rollout.steps import STEPS_VERSION


def _change(**overrides: object) -> RolloutChange:
    base = RolloutChange(
        change_id="CHG0000001", title="t", risk="high", cluster="c1",
        target=ChangeTarget(packages={"agent": "1.1"}),
        window=ChangeWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)),
        digest="ab" * 32, path=Path("change.yaml"),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def _no_platform() -> Any:
    pytest.fail("the platform was opened")


def _orch(change: RolloutChange, state: Path) -> Orchestrator:
    return Orchestrator(_no_platform, VsphereStandInExecutor(_no_platform), PlatformRequalifier(),
                        change, state, None)


def _journal(state: Path, run_id: str, *, digest: str = "ab" * 32, done: bool = False) -> None:
    j = Journal.create(state, run_id)
    j.append("run.begin", run_id=run_id, change_id="CHG0000001", change_digest=digest,
             resumed_from=None, steps_version=STEPS_VERSION)
    if done:
        j.append("run.done", run_id=run_id)
    j.close()


def test_outside_the_window_is_refused_before_the_lease_and_the_platform(tmp_path: Path) -> None:
    change = _change(window=ChangeWindow(datetime(2020, 1, 1, tzinfo=UTC),
                                         datetime(2020, 1, 2, tzinfo=UTC)))
    with pytest.raises(GateRefused, match="window"):
        _orch(change, tmp_path).run()
    assert not (tmp_path / "leases").exists()
    assert not (tmp_path / "journals").exists()


def test_resume_of_a_finished_run_is_refused(tmp_path: Path) -> None:
    _journal(tmp_path, "R1", done=True)
    with pytest.raises(BadInputError, match="nothing to resume"):
        _orch(_change(), tmp_path).resume("R1")


def test_resume_with_another_change_file_is_refused(tmp_path: Path) -> None:
    _journal(tmp_path, "R1", digest="cd" * 32)
    with pytest.raises(BadInputError, match="change file differs"):
        _orch(_change(), tmp_path).resume("R1")


def test_resume_of_an_unknown_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such journal"):
        _orch(_change(), tmp_path).resume("R404")


def test_fault_injector_fails_only_its_pair_and_crashes_at_its_line() -> None:
    class Crashed(Exception):
        pass

    def crash() -> NoReturn:
        raise Crashed

    fault = FaultInjector(fail_at=("h1", "patch"), crash_after_line=3, crash=crash)
    fault.before_operation("h1", "reboot")
    fault.before_operation("h2", "patch")
    with pytest.raises(InjectedFault, match="patch failed: injected fault"):
        fault.before_operation("h1", "patch")
    for line in range(3):
        fault.after_line(line)
    with pytest.raises(Crashed):
        fault.after_line(3)


def test_target_mismatches_and_the_stand_in_mark() -> None:
    change = _change(target=ChangeTarget(hypervisor_version="6.5.0", packages={"agent": "1.1"}))
    assert target_mismatches({"hypervisor_version": "6.5.0", "agent": "1.1"}, change) == []
    missing = target_mismatches({"hypervisor_version": "6.5.0"}, change)
    assert missing == ["agent is not installed, target 1.1"]
    entry = mark_entry(change)
    assert entry == "CHG0000001 agent=1.1"
    assert parse_mark(["CHG0000000 agent=1.0", entry]) == {"agent": "1.1"}
