"""Sealing before the play ends (the vqual.qualification.seal task, docs/aap.md), the bundle
copied into a job's artifacts, and the passphrase file an AAP credential injects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from qualification.errors import BadInputError, KeyFileError
from qualification.evidence.verify import verify_bundle
from qualification.execution.artifacts import copy_to_artifacts
from qualification.execution.planning import RunPlan
from qualification.execution.recorder import RunRecorder, open_signer, read_passphrase_file
from qualification.review.signed import load_trust
from tests.unit.execution.test_planning import _plan


def test_a_second_finish_returns_the_first_seal_and_nothing_is_recorded_after_it(
    tmp_path: Path,
) -> None:
    plan, state, key = _plan(tmp_path)
    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    bundle = recorder.start(RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))))
    seal = recorder.finish()
    assert seal is not None and recorder.seal == seal
    lines = (bundle / "records.jsonl").read_bytes()
    target = plan.targets[0].name
    recorder.target_failed(target, "the job failed after the seal")
    recorder.record([{"test_id": "X", "target": target, "verdict": "fail"}])
    assert recorder.finish() == seal
    assert (bundle / "records.jsonl").read_bytes() == lines
    result = verify_bundle(bundle, load_trust(state))
    assert result.status == "valid" and str(result.verdict) == recorder.verdict


def test_the_sealed_bundle_is_copied_under_the_artifacts_and_still_verifies(
    tmp_path: Path,
) -> None:
    plan, state, key = _plan(tmp_path)
    recorder = RunRecorder(tmp_path / "evidence", open_signer(key), "tester")
    bundle = recorder.start(RunPlan.from_dict(json.loads(json.dumps(plan.to_dict()))))
    recorder.finish()
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    relative = copy_to_artifacts(bundle, artifacts)
    assert relative == Path("vqual-evidence") / bundle.parent.name / bundle.name
    assert verify_bundle(artifacts / relative, load_trust(state)).status == "valid"
    with pytest.raises(BadInputError, match="exists already"):
        copy_to_artifacts(bundle, artifacts)
    with pytest.raises(BadInputError, match="does not exist"):
        copy_to_artifacts(bundle, tmp_path / "missing")


def test_an_empty_passphrase_file_means_no_passphrase_and_a_loose_one_is_refused(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    os.chmod(empty, 0o600)
    assert read_passphrase_file(empty) is None
    given = tmp_path / "given"
    given.write_bytes(b"secret\n")
    os.chmod(given, 0o600)
    assert read_passphrase_file(given) == b"secret"
    os.chmod(given, 0o640)
    with pytest.raises(KeyFileError, match="readable by group or others"):
        read_passphrase_file(given)
