"""Slices of a sliced job and the join that cites them (issue 14, item 3; docs/aap.md "Job
slicing"): siblings of one slice parent verify as a change, the join anchors them; a join
citing a seal that is no run here, siblings with one index twice or different counts, and a
join that leaves a sibling out are invalid, naming the run. Bundles through the real writer;
the join through the real ``run_join``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from qualification.errors import BadInputError, EvidenceIncompleteError, EvidenceInvalidError
from qualification.evidence.bundle import BundleWriter, latest_seal
from qualification.evidence.change import NOT_ANCHORED, verify_change
from qualification.evidence.verify import verify_bundle
from qualification.execution.join import JoinRequest, run_join
from qualification.signing import TrustStore
from qualification.signing.keys import Ed25519Signer
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    SINCE,
    Keys,
    add_renderings,
    make_keys,
    run_start_data,
)
from tests.unit.evidence.tamper_testlib import rewrite
from tests.unit.evidence.test_verify_agreement import real_run

BEFORE = "20260301T090000Z-aaaaaa"
SLICES = ("20260301T100000Z-s1s1s1", "20260301T100000Z-s2s2s2", "20260301T100000Z-s3s3s3")
PARENT = "4711"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Keys, Path]:
    """The test keys, plus an executor key file in the trust store (what ``run_join`` signs
    with)."""
    keys = make_keys(tmp_path)
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "keys" / "executor.pem"
    key_file.parent.mkdir()
    key_file.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_file.chmod(0o600)
    keys.trust.add_key(public_key_pem=Ed25519Signer(private).public_pem(), name="Join Service",
                       identity="svc-join@example.com", roles=["executor"], valid_from=SINCE)
    keys.trust.save()
    pin_state(tmp_path)  # the join judges trust through the pinned root
    keys.trust = TrustStore.load(tmp_path / "trust.yaml")
    return keys, key_file


def sliced_run(evidence: Path, keys: Keys, run_id: str, block: dict[str, Any] | None,
               prev: str | None) -> Path:
    """A sealed slice: no test planned (the chain rules do not look at results)."""
    w = BundleWriter.create(evidence, CHANGE, run_id, keys.executor, "jane.doe")
    start = {**run_start_data(prev), "planned": []}
    if block is not None:
        start["slice"] = block
    w.append("run.start", start)
    add_renderings(w)
    w.seal({}, 0, 0, "pass")
    return w.path


def _slice(index: int | None, count: int | None = 3, parent: str = PARENT) -> dict[str, Any]:
    return {"index": index, "count": count, "job": f"job-{index}", "parent": parent}


@pytest.fixture
def change(tmp_path: Path, keys: tuple[Keys, Path]) -> Path:
    """One run, then three slices that all started before any sealed (they cite that run)."""
    evidence = tmp_path / "evidence"
    real_run(evidence, keys[0], BEFORE)
    prev = latest_seal(evidence, CHANGE)
    for i, run_id in enumerate(SLICES, start=1):
        sliced_run(evidence, keys[0], run_id, _slice(i), prev)
    return evidence / CHANGE


def _join(change: Path, keys: tuple[Keys, Path], **kw: Any) -> Any:
    return run_join(JoinRequest(
        change_dir=change, parent=kw.pop("parent", PARENT), key_file=keys[1],
        passphrase_reader=lambda: b"", state_dir=change.parent.parent, initiator="ci", **kw))


def test_siblings_citing_one_seal_verify_and_the_join_anchors_them(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    before = verify_change(change, keys[0].trust, workers=1)
    assert before.status == "valid", before.problems
    # The slices ran side by side (here: one after the other, each citing the run before
    # the job): no "runs that overlapped" warning; each is unanchored until joined.
    assert not [w for w in before.warnings if "overlapped" in w], before.warnings
    assert len([w for w in before.warnings if w.startswith(NOT_ANCHORED)]) == 3
    summary = _join(change, keys)
    assert [j["run"] for j in summary.joins] == list(SLICES)
    assert summary.verdict == "pass" and summary.exit_code == 0
    joined = verify_bundle(summary.bundle, keys[0].trust, workers=1)
    assert (joined.status, joined.verdict, joined.planned) == ("valid", "pass", 0)
    after = verify_change(change, keys[0].trust, workers=1)
    assert after.status == "valid", after.problems
    unanchored = [w for w in after.warnings if w.startswith(NOT_ANCHORED)]
    assert unanchored == [w for w in unanchored if summary.run_id in w] and len(unanchored) == 1


def test_deleting_a_sibling_after_the_join_is_invalid_naming_the_join(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    summary = _join(change, keys)
    shutil.rmtree(change / SLICES[1])
    res = verify_change(change, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert any(p.startswith(f"run {summary.run_id}: the join cites seal") and SLICES[1] in p
               for p in res.problems), res.problems


def test_a_rewritten_sibling_is_invalid_naming_the_join(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    # Re-signed with the executor's own key: the sibling verifies alone, its seal changed.
    summary = _join(change, keys)

    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["kind"] == "run.start":
            rec["data"]["slice"]["job"] = "job-9"
        return rec

    rewrite(change / SLICES[0], keys[0].executor, edit)
    res = verify_change(change, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert res.runs[1].status == "valid" and res.runs[1].path.name == SLICES[0]
    # The join cites the old seal, and does not cite the run now there.
    assert [p for p in res.problems if p.startswith(f"run {summary.run_id}:")] == [
        (f"run {summary.run_id}: the join cites seal {summary.joins[0]['seal'][:16]} (run "
         f"{SLICES[0]}), the seal of no run here (deleted, replaced or rewritten)"),
        (f"run {summary.run_id}: the join of slice parent {PARENT} omits run {SLICES[0]}, "
         "sealed before the join started"),
    ]


def test_a_join_that_omits_a_sibling_is_invalid_naming_it(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    summary = _join(change, keys)
    late = sliced_run(change.parent, keys[0], "20260301T100000Z-s4s4s4",
                      _slice(None, None), latest_seal(change.parent, CHANGE))
    res = verify_change(change, keys[0].trust, workers=1)
    # Sealed after the join started: not the join's omission, only unanchored.
    assert res.status == "valid", res.problems
    # A join written by hand that leaves out a sibling sealed before it.
    w = BundleWriter.create(change.parent, CHANGE, "20990101T000000Z-joinjn", keys[0].executor,
                            "jane.doe")
    start = {**run_start_data(latest_seal(change.parent, CHANGE)), "planned": [],
             "mode": "join", "joins": summary.joins[:2]}
    w.append("run.start", start)
    add_renderings(w)
    w.seal({}, 0, 0, "pass")
    res = verify_change(change, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert f"run {w.path.name}: the join of slice parent {PARENT} omits run {SLICES[2]}, sealed " \
        "before the join started" in res.problems
    assert any(late.name in p for p in res.problems)


def test_siblings_with_one_index_twice_or_different_counts_are_invalid(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    evidence = tmp_path / "evidence"
    sliced_run(evidence, keys[0], SLICES[0], _slice(1, 2), None)
    sliced_run(evidence, keys[0], SLICES[1], _slice(1, 3), None)
    res = verify_change(evidence / CHANGE, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert f"run {SLICES[1]}: slice 1 of parent {PARENT} is also run {SLICES[0]}" in res.problems
    assert f"slice parent {PARENT}: runs {SLICES[0]}, {SLICES[1]} give different slice counts " \
        "(2, 3)" in res.problems


@pytest.mark.parametrize("block", [
    {"index": 3, "count": 2, "job": None, "parent": PARENT},
    {"index": 1, "count": None, "job": None, "parent": PARENT},
    {"index": None, "count": None, "job": None, "parent": "a b"},
    {"index": 1, "count": 1, "parent": PARENT},
])
def test_a_bad_slice_block_makes_the_run_invalid(
    tmp_path: Path, keys: tuple[Keys, Path], block: dict[str, Any]
) -> None:
    run = sliced_run(tmp_path / "evidence", keys[0], SLICES[0], block, None)
    res = verify_bundle(run, keys[0].trust, workers=1)
    assert res.status == "invalid"
    assert any("run.start slice" in p for p in res.problems), res.problems


def test_the_join_refuses_a_missing_or_unsealed_slice(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    shutil.rmtree(change / SLICES[1])
    with pytest.raises(EvidenceIncompleteError, match=r"slice 2 of 3 has no sealed run"):
        _join(change, keys)
    # An unsealed slice: run.start written, no run.end.
    w = BundleWriter.create(change.parent, CHANGE, SLICES[1], keys[0].executor, "jane.doe")
    w.append("run.start", {**run_start_data(latest_seal(change.parent, CHANGE)), "planned": [],
                           "slice": _slice(2)})
    w.sync()
    with pytest.raises(EvidenceIncompleteError, match=f"run {SLICES[1]} .* is not sealed"):
        _join(change, keys)
    assert len(list(change.iterdir())) == 4  # nothing written


def test_the_join_refuses_expect_not_met_bad_parent_and_an_invalid_change(
    change: Path, keys: tuple[Keys, Path]
) -> None:
    with pytest.raises(BadInputError, match="--expect 4: the slices of 4711 say they are 3"):
        _join(change, keys, expect=4)
    with pytest.raises(BadInputError, match="slice parent 'x/y' is not a plain id"):
        _join(change, keys, parent="x/y")
    with pytest.raises(EvidenceIncompleteError, match="no sealed run of slice parent 99"):
        _join(change, keys, parent="99")
    (change / SLICES[2] / "records.jsonl").write_bytes(b"{}\n")
    with pytest.raises(EvidenceInvalidError, match="the change does not verify"):
        _join(change, keys)


def test_without_counts_the_join_counts_against_expect(
    tmp_path: Path, keys: tuple[Keys, Path]
) -> None:
    # What AWX records: job and workflow job ids, no index, no count.
    evidence = tmp_path / "evidence"
    for run_id in SLICES[:2]:
        sliced_run(evidence, keys[0], run_id, _slice(None, None), None)
    with pytest.raises(EvidenceIncompleteError, match="2 of 3 slices have a sealed run"):
        _join(evidence / CHANGE, keys, expect=3)
    summary = _join(evidence / CHANGE, keys, expect=2)
    assert verify_change(evidence / CHANGE, keys[0].trust, workers=1).status == "valid"
    assert "2 slices, PASS" in summary.to_text()
