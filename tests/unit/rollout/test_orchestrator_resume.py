"""Resume and the steps version: a run's journal records the version of the step table it was
written with, a resume of the same version goes on, and a journal of another version (or of
none, from before vqual recorded one) is refused before anything is touched.

The runs are whole rolling-patch runs on libvirt's in-process test driver, as in
test_orchestrator_verdict.py (the patch executor is the one stand-in, named there).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualification import __version__
from qualification.cli import main
from qualification.errors import BadInputError
from qualification.execution.recorder import open_signer
from qualification.rollout.evidence import PatchEvidence
from qualification.rollout.journal import journal_path, read_journal
from qualification.rollout.orchestrator import FaultInjector, Orchestrator, PatchOutcome
from qualification.rollout.requalify import PlatformRequalifier
from qualification.rollout.steps import STEPS_VERSION
from tests.unit.rollout.test_orchestrator_verdict import MemoryExecutor, Run


@pytest.fixture
def harness(tmp_path: Path) -> Run:
    return Run(tmp_path)


def _orch(harness: Run, executor: MemoryExecutor, fault: FaultInjector | None = None) -> Orchestrator:
    signer = open_signer(harness.state / "keys" / "executor.pem")
    evidence = PatchEvidence(harness.tmp / "evidence", signer, "pipeline", state_dir=harness.state)
    return Orchestrator(harness.platform, executor, PlatformRequalifier(), harness.change("medium"),
                        harness.state, evidence, fault)


def _halted_at_patch(harness: Run, executor: MemoryExecutor) -> PatchOutcome:
    """A run halted by a fault in h1's patch step: h1 stays in maintenance, unpatched."""
    outcome = _orch(harness, executor, FaultInjector(fail_at=("h1", "patch"))).run()
    assert outcome.status == "halted" and outcome.deviation is not None
    assert outcome.deviation["step"] == "patch"
    return outcome


def _rewrite_begin(path: Path, **changes: object) -> bytes:
    """Rewrite the journal's run.begin (a journal of another vqual); returns the new bytes."""
    lines = path.read_bytes().splitlines(keepends=True)
    begin = json.loads(lines[0])
    for key, value in changes.items():
        if value is None:
            begin.pop(key, None)
        else:
            begin[key] = value
    lines[0] = json.dumps(begin, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    return path.read_bytes()


def test_a_run_records_the_steps_version_in_its_first_journal_line(harness: Run) -> None:
    outcome = _orch(harness, MemoryExecutor({"h1": {"agent": "1.0"}})).run()
    assert outcome.status == "done"
    begin = read_journal(journal_path(harness.state, str(outcome.run_id)))[0]
    assert begin["event"] == "run.begin"
    assert begin["steps_version"] == STEPS_VERSION
    assert begin["vqual_version"] == __version__


def test_a_resume_of_the_same_steps_version_finishes_the_run(harness: Run) -> None:
    executor = MemoryExecutor({"h1": {"agent": "1.0"}})
    halted = _halted_at_patch(harness, executor)
    assert executor.packages["h1"] == {"agent": "1.0"}
    outcome = _orch(harness, executor).resume(str(halted.run_id))
    assert outcome.status == "done" and outcome.committed == ["h1"]
    assert outcome.resumed_from == halted.run_id
    assert executor.packages["h1"] == {"agent": "1.1"}
    events = read_journal(journal_path(harness.state, str(outcome.run_id)))
    assert events[0]["resumed_from"] == halted.run_id
    assert events[0]["steps_version"] == STEPS_VERSION
    # It went on at the step that failed: the steps done before it are not done again.
    begun = [e["step"] for e in events if e["event"] == "step.begin" and e["host"] == "h1"]
    assert begun == ["patch", "reboot", "requalify", "leave_maintenance", "health_check",
                     "commit"]
    with harness.platform() as platform:
        assert not {h.name: h for h in platform.hosts()}["h1"].in_maintenance


@pytest.mark.parametrize("recorded", [STEPS_VERSION + 1, None], ids=["foreign", "none"])
def test_a_resume_of_another_steps_version_is_refused_and_touches_nothing(
    harness: Run, recorded: int | None
) -> None:
    executor = MemoryExecutor({"h1": {"agent": "1.0"}})
    halted = _halted_at_patch(harness, executor)
    path = journal_path(harness.state, str(halted.run_id))
    # A version-less journal is one from before the version was recorded: no vqual_version.
    before = _rewrite_begin(path, steps_version=recorded,
                            vqual_version="0.9.0" if recorded is not None else None)
    journals = sorted(path.parent.iterdir())
    with pytest.raises(BadInputError) as refused:
        _orch(harness, executor).resume(str(halted.run_id))
    message = refused.value.one_line()
    assert "\n" not in message
    recorded_text = f"steps version {recorded}" if recorded is not None else "no steps version"
    assert message.startswith(f"run {halted.run_id} cannot be resumed: its journal records "
                              f"{recorded_text} and this vqual runs rolling-patch steps version "
                              f"{STEPS_VERSION}; ")
    who = "vqual 0.9.0" if recorded is not None else "the vqual release that started it"
    assert f"finish it with {who} (vqual patch --resume {halted.run_id})" in message
    assert "or start a new run without --resume" in message
    # The halt left h1 in maintenance, which a new run's gate refuses: the message says so.
    assert message.endswith("first take h1 out of maintenance")
    assert path.read_bytes() == before
    assert sorted(path.parent.iterdir()) == journals  # no journal for a new run either
    assert not list((harness.state / "leases").glob("*.json"))
    assert executor.packages["h1"] == {"agent": "1.0"}


def test_a_resume_of_a_resumed_run_checks_every_journal_of_the_chain(harness: Run) -> None:
    executor = MemoryExecutor({"h1": {"agent": "1.0"}})
    first = _halted_at_patch(harness, executor)
    second = _orch(harness, executor, FaultInjector(fail_at=("h1", "patch"))).resume(
        str(first.run_id))
    assert second.status == "halted"
    _rewrite_begin(journal_path(harness.state, str(first.run_id)), steps_version=None)
    with pytest.raises(BadInputError, match=(
            f"run {second.run_id} cannot be resumed: the journal of run {first.run_id}, which "
            "it resumed, records no steps version")):
        _orch(harness, executor).resume(str(second.run_id))


def test_the_cli_refuses_a_version_less_journal_with_one_line_and_exit_2(harness: Run) -> None:
    executor = MemoryExecutor({"h1": {"agent": "1.0"}})
    halted = _halted_at_patch(harness, executor)
    path = journal_path(harness.state, str(halted.run_id))
    before = _rewrite_begin(path, steps_version=None, vqual_version=None)
    inventory = harness.tmp / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {}\n")
    change = harness.tmp / "change.yaml"  # written by harness.change() for the halted run
    result = CliRunner().invoke(main, [
        "patch", "-i", str(inventory), "--change", str(change), "--resume", str(halted.run_id),
        "--state-dir", str(harness.state), "--evidence-dir", str(harness.tmp / "evidence"),
    ])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"vqual: run {halted.run_id} cannot be resumed: its journal "
                               "records no steps version")
    assert "finish it with the vqual release that started it" in lines[0]
    assert "Traceback" not in result.output
    assert path.read_bytes() == before
