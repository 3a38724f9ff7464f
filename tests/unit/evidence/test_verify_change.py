"""A whole change verifies (issue 13, item 3): every run, the ``prev_run_seal`` chain between
them, what is missing; deleting, replacing, rewriting or cutting any run but the latest makes
the change invalid, naming the run; the latest is reported as not anchored."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from qualification.errors import BadInputError
from qualification.evidence.bundle import BundleWriter, append_signature, latest_seal
from qualification.evidence.change import NOT_ANCHORED, verify_change
from qualification.signing.keys import Ed25519Signer
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    Keys,
    add_renderings,
    make_keys,
    run_start_data,
)
from tests.unit.evidence.tamper_testlib import cut_run_end, rewrite
from tests.unit.evidence.test_verify_agreement import real_run

RUNS = ("20260301T100000Z-aaaaaa", "20260302T100000Z-bbbbbb", "20260303T100000Z-cccccc")


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path)


@pytest.fixture
def change(tmp_path: Path, keys: Keys) -> Path:
    """Three sealed runs, each citing the seal of the one before; the first reviewed."""
    evidence = tmp_path / "evidence"
    for run_id in RUNS:
        real_run(evidence, keys, run_id, prev=latest_seal(evidence, CHANGE))
    append_signature(
        evidence / CHANGE / RUNS[0], keys.reviewer,
        {"meaning": "reviewed", "name": "Rita Reviewer", "roles": ["reviewer"], "comment": ""},
    )
    return evidence / CHANGE


def _retouch(rec: dict[str, Any]) -> dict[str, Any] | None:
    # A consistent rewrite: an observed value changed, counts and files still agree.
    if rec["kind"] == "check.result" and rec["data"]["test_id"] == "KVM-01":
        rec["data"]["observed"] = {"server": "ntp1", "stratum": 2}
    return rec


def test_three_runs_verify_and_the_latest_is_not_anchored(change: Path, keys: Keys) -> None:
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert [r.path.name for r in res.runs] == list(RUNS)
    assert [r.prev_run_seal for r in res.runs] == [None, *(r.seal_digest for r in res.runs[:2])]
    seal = str(res.runs[2].seal_digest)[:16]
    assert [w for w in res.warnings if w.startswith(NOT_ANCHORED)] == [
        (
            f"{NOT_ANCHORED}: {RUNS[2]} (seal {seal}) is cited by no later run and no "
            "transparency log; removing or rewriting it is not detectable here"
        )
    ]
    assert res.runs[0].signatures and res.exit_code == 0


@pytest.mark.parametrize("which", [0, 1])
def test_deleting_a_run_but_the_latest_is_invalid(change: Path, keys: Keys, which: int) -> None:
    shutil.rmtree(change / RUNS[which])
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "invalid" and res.exit_code == 1
    assert any(
        p.startswith(f"run {RUNS[which + 1]}: cites prev_run_seal")
        and ("deleted" in p)
        for p in res.problems
    ), res.problems


@pytest.mark.parametrize("which", [0, 1])
def test_rewriting_a_run_with_the_executor_key_is_invalid_naming_it(
    change: Path, keys: Keys, which: int
) -> None:
    rewrite(change / RUNS[which], keys.executor, _retouch)
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "invalid"
    # The rewritten run verifies on its own; the chain names it.
    assert res.runs[which].status == "valid", res.runs[which].problems
    cites = str(res.runs[which + 1].prev_run_seal)[:16]
    assert [p for p in res.problems if p.startswith(f"run {RUNS[which + 1]}: cites")] == [
        (
            f"run {RUNS[which + 1]}: cites prev_run_seal {cites}, the seal of no run here; "
            f"run {RUNS[which]} (the latest sealed before it started) was replaced or "
            "rewritten, or a run after it was deleted"
        )
    ], res.problems


def test_replacing_a_run_by_another_is_invalid_naming_it(
    change: Path, keys: Keys, tmp_path: Path
) -> None:
    shutil.rmtree(change / RUNS[1])
    real_run(tmp_path / "evidence", keys, RUNS[1], prev=None)  # a fresh run under its name
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "invalid"
    assert any(p.startswith(f"run {RUNS[1]}") for p in res.problems), res.problems


def test_a_sealed_run_cut_before_its_run_end_is_named(change: Path, keys: Keys) -> None:
    cut_run_end(change / RUNS[1])
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "invalid"
    assert f"run {RUNS[1]} has no run.end: a sealed run cut before its run.end" in "\n".join(
        res.problems
    )
    assert any("manifest.json is present" in w for w in res.runs[1].warnings)


def test_the_latest_run_cut_is_only_incomplete(change: Path, keys: Keys) -> None:
    # Nothing cites the latest run: without a transparency log this cannot be told from a
    # crash while sealing, beyond the manifest the seal wrote first (a warning).
    cut_run_end(change / RUNS[2])
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "incomplete" and res.exit_code == 3
    assert any("manifest.json is present" in w for w in res.runs[2].warnings)


def test_rewriting_with_an_untrusted_key_names_the_run(change: Path, keys: Keys) -> None:
    rewrite(change / RUNS[0], Ed25519Signer.generate(), _retouch)
    res = verify_change(change, keys.trust, workers=1)
    assert res.status == "invalid"
    assert res.problems[0].startswith(f"run {RUNS[0]}: invalid: records.jsonl line 1")


def test_a_directory_without_runs_is_bad_input(tmp_path: Path, keys: Keys) -> None:
    with pytest.raises(BadInputError, match="holds no evidence bundle"):
        verify_change(tmp_path, keys.trust)


def test_overlapping_runs_verify_and_each_uncited_one_is_not_anchored(
    tmp_path: Path, keys: Keys
) -> None:
    """A rolling patch cites the run sealed before it started and is sealed after the
    re-qualification runs it started, which cite each other."""
    evidence = tmp_path / "evidence"
    first = real_run(evidence, keys, RUNS[0])
    patch = BundleWriter.create(evidence, CHANGE, "20260301T110000Z-patch0", keys.executor, "ci")
    patch.append("run.start", {**run_start_data(latest_seal(evidence, CHANGE)), "planned": []})
    inner = [real_run(evidence, keys, r, prev=latest_seal(evidence, CHANGE)) for r in RUNS[1:]]
    add_renderings(patch)
    patch.seal({}, 0, 0, "pass")
    res = verify_change(evidence / CHANGE, keys.trust, workers=1)
    assert res.status == "valid", res.problems
    assert res.runs[1].path.name == patch.path.name and res.runs[1].prev_run_seal == (
        res.runs[0].seal_digest
    )
    not_anchored = [w.split(":")[1].split()[0] for w in res.warnings if NOT_ANCHORED in w]
    assert sorted(not_anchored) == sorted([inner[-1].name, patch.path.name])
    assert first.name not in not_anchored


@pytest.mark.parametrize("window", [64, 700, 1 << 20])
def test_read_seal_reads_the_tail_first_and_gives_the_whole_files_answer(
    change: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    import hashlib

    import qualification.evidence.bundle as bundle_module
    from tests.unit.evidence.tamper_testlib import records

    monkeypatch.setattr(bundle_module, "_SEAL_TAIL", window)
    for run_id in RUNS:  # the first carries a signature after its seal
        lines = (change / run_id / "records.jsonl").read_bytes().splitlines()
        kinds = [r["kind"] for r in records(change / run_id)]
        end = lines[kinds.index("run.end")]
        found = bundle_module.read_seal(change / run_id / "records.jsonl")
        assert found is not None and found[0] == hashlib.sha256(end).hexdigest()
    cut_run_end(change / RUNS[1])
    assert bundle_module.read_seal(change / RUNS[1] / "records.jsonl") is None
