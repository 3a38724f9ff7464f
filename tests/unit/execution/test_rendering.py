"""VQ-91: JUnit and the report rendered off the seal's critical path (JUnit by a worker
process, the report here, the garbage collector paused) are the bytes one process rendering
both gives, and the sealed bundle verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qualification.evidence.verify import verify_bundle
from qualification.execution import rendering
from qualification.execution.gc_pause import gc_paused
from qualification.execution.planning import RunPlan
from qualification.execution.recorder import RunRecorder, open_signer
from qualification.reports.html import render_report
from qualification.reports.junit import render_junit
from qualification.review.signed import load_trust
from tests.unit.execution.test_planning import _plan


def _recorded(tmp_path: Path) -> tuple[RunRecorder, Path]:
    """A run with results of every verdict on its two hosts, not yet rendered or sealed."""
    plan, state, key = _plan(tmp_path)
    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    recorder.start(RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))))
    verdicts = iter(["pass", "fail", "error", "not-executed", "pass", "fail"])
    for target in plan.targets:
        recorder.record([
            {"test_id": t.test_id, "target": target.name, "verdict": next(verdicts),
             "observed": {"value": "<b>&</b>", "n": 1.5}, "reason": "why \u00e9"}
            for t in target.tests
        ])
    return recorder, state


def _as_one_process(bundle: Path) -> tuple[bytes, bytes]:
    records = rendering.records_as_dicts(bundle)
    return render_junit(records).encode("utf-8"), render_report(records).encode("utf-8")


def test_the_worker_renders_the_bytes_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, state = _recorded(tmp_path)
    assert recorder.writer is not None
    bundle = recorder.writer.path
    recorder.writer.sync()
    junit, report = _as_one_process(bundle)

    def not_here(_records: object) -> str:
        raise AssertionError("JUnit was rendered in this process, not by the worker")

    # The worker is a new interpreter: this process's render_junit is not what it runs.
    monkeypatch.setattr(rendering, "render_junit", not_here)
    rendering.add_renderings(recorder.writer, parallel_from=1)
    assert (bundle / "junit.xml").read_bytes() == junit
    assert (bundle / "report.html").read_bytes() == report
    monkeypatch.undo()
    assert recorder.finish() is not None  # the renderings are there: finish adds the same
    assert verify_bundle(bundle, load_trust(state)).status == "valid"


def test_a_failed_worker_falls_back_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, _state = _recorded(tmp_path)
    assert recorder.writer is not None
    bundle = recorder.writer.path
    recorder.writer.sync()
    junit, report = _as_one_process(bundle)

    def failing(_bundle: Path, _out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"],
                                stderr=subprocess.PIPE)

    monkeypatch.setattr(rendering, "_start_worker", failing)
    rendering.add_renderings(recorder.writer, parallel_from=1)
    assert (bundle / "junit.xml").read_bytes() == junit
    assert (bundle / "report.html").read_bytes() == report


def test_small_runs_render_in_process_with_the_same_bytes(tmp_path: Path) -> None:
    recorder, _state = _recorded(tmp_path)
    assert recorder.writer is not None
    bundle = recorder.writer.path
    recorder.writer.sync()
    junit, report = _as_one_process(bundle)
    rendering.add_renderings(recorder.writer)  # far below PARALLEL_FROM
    assert ((bundle / "junit.xml").read_bytes(), (bundle / "report.html").read_bytes()) == (
        junit, report)


def test_the_collector_is_back_as_it_was() -> None:
    import gc

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
