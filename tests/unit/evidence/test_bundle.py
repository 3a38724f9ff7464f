"""BundleWriter, append_signature, latest_seal, read_bundle and verify_bundle on real bundles."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualification import FORMAT_VERSION
from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.bundle import BundleWriter, append_signature, latest_seal
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.signing import Ed25519Signer, TrustStore
from qualification.verdict import overall
from tests.unit.evidence.evidence_testlib import (
    CHANGE,
    SINCE,
    add_renderings,
    build_bundle,
    make_keys,
    planned,
    run_start_data,
)


@pytest.fixture
def keys(tmp_path: Path):
    return make_keys(tmp_path)


def lines_of(path: Path) -> list[bytes]:
    return (path / "records.jsonl").read_bytes().splitlines()


def payload_of(line: bytes) -> dict:
    return json.loads(base64.b64decode(json.loads(line)["payload"]))


def test_sealed_bundle_verifies_and_reports_its_content(tmp_path: Path, keys) -> None:
    w, counts = build_bundle(tmp_path / "evidence", keys)
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "valid", res.problems
    assert res.exit_code == 0
    assert res.seal_digest == w.seal_digest
    assert res.seal_digest == hashlib.sha256(lines_of(w.path)[-1]).hexdigest()
    assert res.counts == counts
    assert res.planned == len(planned())
    assert res.trust_digest == hashlib.sha256((tmp_path / "trust.yaml").read_bytes()).hexdigest()
    assert (res.change_id, res.run_id) == (CHANGE, w.run_id)
    assert res.missing_tests == []


def test_records_chain_and_fields_follow_the_format(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    lines = lines_of(w.path)
    prev = "0" * 64
    for seq, line in enumerate(lines):
        rec = payload_of(line)
        assert set(rec) == {
            "v",
            "seq",
            "prev",
            "time",
            "change_id",
            "run_id",
            "actor",
            "initiator",
            "kind",
            "data",
        }
        assert (rec["v"], rec["seq"], rec["prev"]) == (FORMAT_VERSION, seq, prev)
        assert rec["actor"] == keys.executor.keyid
        assert rec["time"].endswith("Z") and len(rec["time"]) == 27
        prev = hashlib.sha256(line).hexdigest()
    kinds = [payload_of(x)["kind"] for x in lines]
    assert kinds[0] == "run.start" and kinds[-1] == "run.end"


def test_big_integers_are_stored_as_strings(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys, results=1)
    rec = payload_of(lines_of(w.path)[2])
    assert rec["kind"] == "check.result"
    assert rec["data"]["observed"]["counter"] == str(2**63 - 25)


def test_manifest_lists_every_sealed_file_with_its_digest(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    manifest = json.loads((w.path / "manifest.json").read_bytes())
    assert manifest["v"] == 1
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((w.path / rel).read_bytes()).hexdigest() == digest
    on_disk = {p.relative_to(w.path).as_posix() for p in w.path.rglob("*") if p.is_file()}
    assert on_disk - set(manifest["files"]) == {"records.jsonl", "manifest.json"}
    end = payload_of(lines_of(w.path)[-1])
    digest = hashlib.sha256((w.path / "manifest.json").read_bytes()).hexdigest()
    assert end["data"]["manifest_digest"] == digest


def test_store_raw_inline_up_to_1024_bytes_else_file(tmp_path: Path, keys) -> None:
    w = BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane")
    assert w.store_raw("é" * 512) == "é" * 512  # 1024 UTF-8 bytes
    ref = w.store_raw("é" * 513)
    assert isinstance(ref, dict)
    data = ("é" * 513).encode()
    assert ref == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "file": f"raw/{hashlib.sha256(data).hexdigest()}.txt",
    }
    assert (w.path / ref["file"]).read_bytes() == data
    undecodable = b"\xff\xfe binary".decode("utf-8", "surrogateescape")
    ref2 = w.store_raw(undecodable)
    assert isinstance(ref2, dict)
    assert (w.path / ref2["file"]).read_bytes() == b"\xff\xfe binary"
    assert w.store_raw(None) is None


def test_create_refuses_an_existing_run_and_unsafe_names(tmp_path: Path, keys) -> None:
    BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane").close()
    with pytest.raises(BadInputError, match="already exists"):
        BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane")
    for bad in ("..", ".hidden", "a/b", "", "x" * 65, "run id"):
        with pytest.raises(BadInputError, match="not a safe name"):
            BundleWriter.create(tmp_path, CHANGE, bad, keys.executor, "jane")
        with pytest.raises(BadInputError, match="not a safe name"):
            BundleWriter.create(tmp_path, bad, "r2", keys.executor, "jane")
    assert sorted(p.name for p in (tmp_path / CHANGE).iterdir()) == ["r1"]


def test_append_enforces_record_order_and_kinds(tmp_path: Path, keys) -> None:
    w = BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane")
    with pytest.raises(BadInputError, match="run.start must be the first"):
        w.append("check.result", {"test_id": "T"})
    assert w.append("run.start", run_start_data()) == 0
    with pytest.raises(BadInputError, match="run.start must be the first"):
        w.append("run.start", run_start_data())
    with pytest.raises(BadInputError, match="unknown record kind"):
        w.append("check.reslut", {})
    for kind in ("run.end", "signature"):
        with pytest.raises(BadInputError, match="seal"):
            w.append(kind, {})
    with pytest.raises(BadInputError, match="not JSON"):
        w.append("action", {"when": datetime.now(UTC)})
    assert w.append("action", {"name": "x"}) == 1
    add_renderings(w)
    w.seal({"pass": 0}, 0, 0, "pass")
    with pytest.raises(BadInputError, match="sealed"):
        w.append("action", {"name": "late"})


def test_add_file_only_accepts_sealed_paths(tmp_path: Path, keys) -> None:
    w = BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane")
    for bad in (
        "records.jsonl",
        "manifest.json",
        "views/x.html",
        "../x",
        "data/../x",
        "notes.txt",
        "/etc/passwd",
        "raw/abc.txt",
        "data/.hidden",
    ):
        with pytest.raises(BadInputError, match="not a sealed bundle file"):
            w.add_file(bad, b"x")
    assert w.add_file("data/hcl/v8.csv", b"a") == hashlib.sha256(b"a").hexdigest()
    w.add_file("data/hcl/v8.csv", b"a")  # same content again is fine
    with pytest.raises(BadInputError, match="other content"):
        w.add_file("data/hcl/v8.csv", b"b")
    assert not [p for p in (w.path / "data" / "hcl").iterdir() if p.name.startswith(".")]


def test_seal_rejects_unknown_verdicts(tmp_path: Path, keys) -> None:
    w = BundleWriter.create(tmp_path, CHANGE, "r1", keys.executor, "jane")
    w.append("run.start", run_start_data())
    with pytest.raises(BadInputError, match="unknown verdict"):
        w.seal({"passed": 1}, 1, 1, "pass")
    with pytest.raises(BadInputError, match="verdict"):
        w.seal({"pass": 1}, 1, 1, "ok")


def test_latest_seal_picks_the_last_sealed_run(tmp_path: Path, keys) -> None:
    ev = tmp_path / "evidence"
    assert latest_seal(ev, CHANGE) is None
    first, _ = build_bundle(ev, keys, "run-b", results=2)
    assert latest_seal(ev, CHANGE) == first.seal_digest
    build_bundle(ev, keys, "run-c", results=2, seal=False)  # crashed: not sealed
    assert latest_seal(ev, CHANGE) == first.seal_digest
    second, _ = build_bundle(ev, keys, "run-a", results=2)  # name sorts first, sealed later
    assert latest_seal(ev, CHANGE) == second.seal_digest


def test_signatures_continue_the_chain_and_are_reported(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    n = len(lines_of(w.path))
    seq = append_signature(
        w.path,
        keys.reviewer,
        {
            "meaning": "reviewed",
            "name": "Rita Reviewer",
            "roles": ["reviewer"],
            "comment": "checked",
        },
    )
    assert seq == n
    append_signature(
        w.path,
        keys.approver,
        {"meaning": "approved", "name": "Anna Approver", "roles": ["approver"], "comment": None},
    )
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "valid", res.problems
    assert [(s["meaning"], s["name"], s["identity"]) for s in res.signatures] == [
        ("reviewed", "Rita Reviewer", "rita@example.com"),
        ("approved", "Anna Approver", "anna@example.com"),
    ]
    assert all(s["seal"] == w.seal_digest for s in res.signatures)
    lines = lines_of(w.path)
    assert payload_of(lines[n])["prev"] == hashlib.sha256(lines[n - 1]).hexdigest()


def test_append_signature_refuses_unsealed_bundles_and_foreign_seals(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys, seal=False)
    sig = {"meaning": "reviewed", "name": "Rita Reviewer"}
    with pytest.raises(EvidenceInvalidError, match="not sealed"):
        append_signature(w.path, keys.reviewer, sig)
    w2, _ = build_bundle(tmp_path / "evidence", keys, "r2")
    with pytest.raises(BadInputError, match="seal"):
        append_signature(w2.path, keys.reviewer, {**sig, "seal": "0" * 64})
    with pytest.raises(BadInputError, match="meaning"):
        append_signature(w2.path, keys.reviewer, {**sig, "meaning": "liked"})


def test_signature_needs_the_role_for_its_meaning(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    append_signature(w.path, keys.reviewer, {"meaning": "approved", "name": "Rita Reviewer"})
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "invalid"
    assert any("does not hold role approver" in p for p in res.problems)


def test_executor_may_not_approve_own_run(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, executor_roles=("executor", "approver"))
    w, _ = build_bundle(tmp_path / "evidence", keys)
    append_signature(w.path, keys.executor, {"meaning": "approved", "name": "CI Pipeline"})
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "invalid"
    assert any("executed this run and may not approve it" in p for p in res.problems)


def test_printed_name_must_be_the_key_holder(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    append_signature(w.path, keys.reviewer, {"meaning": "reviewed", "name": "Anna Approver"})
    res = verify_bundle(w.path, keys.trust)
    assert any("printed name 'Anna Approver' is not the key holder" in p for p in res.problems)


def test_key_validity_is_judged_at_signing_time(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    signed = datetime.fromisoformat(payload_of(lines_of(w.path)[0])["time"])
    # Revoked after the run: the archived bundle stays valid.
    later = TrustStore.load(tmp_path / "trust.yaml")
    later.revoke(keys.executor.keyid, datetime(2099, 1, 1, tzinfo=UTC))
    later.save()
    assert verify_bundle(w.path, TrustStore.load(tmp_path / "trust.yaml")).status == "valid"
    # Revoked before the run: every run record is signed by a revoked key.
    early = TrustStore.load(tmp_path / "trust.yaml")
    early.keys[keys.executor.keyid] = replace(early.keys[keys.executor.keyid], revoked_at=SINCE)
    early.save()
    res = verify_bundle(w.path, TrustStore.load(tmp_path / "trust.yaml"))
    assert res.status == "invalid"
    assert any("revoked at 2020-01-01T00:00:00Z" in p for p in res.problems)
    assert signed > SINCE


def test_unknown_key_is_not_trusted(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    (tmp_path / "other").mkdir()
    other = make_keys(tmp_path / "other")
    res = verify_bundle(w.path, other.trust)
    assert res.status == "invalid"
    assert "line 1 (seq 0): signature by key" in res.problems[0]
    assert "does not verify with any key in the trust store" in res.problems[0]


def test_throwaway_key_is_valid_with_a_warning(tmp_path: Path) -> None:
    signer = Ed25519Signer.generate()
    trust = TrustStore.empty(tmp_path / "trust.yaml")
    trust.add_key(
        public_key_pem=signer.public_pem(),
        name="Demo",
        identity="demo",
        roles=["executor"],
        valid_from=SINCE,
        throwaway=True,
    )
    trust.save()
    w = BundleWriter.create(tmp_path / "ev", CHANGE, "r1", signer, "demo")
    start = run_start_data()
    w.append("run.start", start)
    # Nothing ran: run.end says so, as the verifier recounts it (planned tests without a
    # result are errors).
    add_renderings(w)
    w.seal({"not-executed": 0}, len(start["planned"]), 0, "error")
    res = verify_bundle(w.path, TrustStore.load(tmp_path / "trust.yaml"))
    assert res.status == "valid"
    assert any("throwaway" in x for x in res.warnings)


def test_crashed_run_is_incomplete_and_names_missing_tests(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys, results=4, seal=False)
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "incomplete" and res.exit_code == 3
    assert res.missing_tests == planned()[4:]
    # Now cut the last line in the middle, as a crash during a write would.
    data = (w.path / "records.jsonl").read_bytes()
    (w.path / "records.jsonl").write_bytes(data[: len(data) - 300])
    res = verify_bundle(w.path, keys.trust)
    assert res.status == "incomplete", res.problems
    assert res.missing_tests == planned()[3:]


def test_parallel_verification_matches_sequential(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    seq = verify_bundle(w.path, keys.trust, workers=1)
    par = verify_bundle(w.path, keys.trust, workers=2)
    assert par.status == seq.status == "valid"
    assert (par.seal_digest, par.counts) == (seq.seal_digest, seq.counts)
    # A damaged line is found by the workers as well, under the same line number.
    path = w.path / "records.jsonl"
    data = bytearray(path.read_bytes())
    data[data.index(b"\n", 5000) - 10] ^= 0x01
    path.write_bytes(bytes(data))
    seq = verify_bundle(w.path, keys.trust, workers=1)
    par = verify_bundle(w.path, keys.trust, workers=2)
    assert seq.status == par.status == "invalid"
    assert seq.problems == par.problems


def test_read_bundle_decodes_records_and_files(tmp_path: Path, keys) -> None:
    w, counts = build_bundle(tmp_path / "evidence", keys)
    b = read_bundle(w.path)
    assert b.change_id == CHANGE and b.run_id == w.run_id
    assert b.run_start is not None and b.run_start.data["planned"] == planned()
    assert b.seal_digest == w.seal_digest
    assert len(b.check_results) == sum(counts.values())
    assert b.manifest is not None and set(b.manifest) <= set(b.files)
    assert b.read_file("spec.yaml").startswith(b"apiVersion")
    with pytest.raises(EvidenceInvalidError, match="outside the bundle"):
        b.read_file("../../../trust.yaml")


def test_files_are_written_with_mode_and_no_temp_leftovers(tmp_path: Path, keys) -> None:
    w, _ = build_bundle(tmp_path / "evidence", keys)
    leftovers = [p for p in w.path.rglob(".*")]
    assert leftovers == []
    assert os.stat(w.path / "records.jsonl").st_size > 0


@pytest.mark.parametrize("parallel", [False, True])
def test_append_many_writes_the_same_valid_records_as_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    import qualification.evidence.bundle as bundle_module
    from qualification.evidence.reader import read_bundle
    from qualification.evidence.verify import verify_bundle
    from tests.unit.evidence.evidence_testlib import (
        TESTS,
        check_result,
        make_keys,
        run_start_data,
    )

    # Force the second-process path on a small batch, or keep the in-process one.
    monkeypatch.setattr(bundle_module, "PARALLEL_BATCH", 10 if parallel else 10_000)
    keys = make_keys(tmp_path)
    writer = BundleWriter.create(tmp_path / "ev", "CHG0001234", "run-many", keys.executor, "ci")
    start = run_start_data()
    writer.append("run.start", start)
    # planned tests only: a check.result run.start did not plan is refused
    datas = [check_result(writer, TESTS[i % 5], "kvm01.lab", i) for i in range(40)]
    datas[3]["observed"] = 2**60  # a big integer: normalised to a string in both paths
    seqs = writer.append_many("check.result", datas)
    assert seqs == list(range(1, 41))
    counts = Counter(str(d["verdict"]) for d in datas)
    add_renderings(writer)
    writer.seal(counts, len(start["planned"]), 40, overall(counts).value)
    result = verify_bundle(writer.path, keys.trust, workers=1)
    assert result.status == "valid", result.problems
    written = [r.data for r in read_bundle(writer.path).check_results]
    assert written[3]["observed"] == str(2**60)
    assert [w["test_id"] for w in written] == [d["test_id"] for d in datas]
