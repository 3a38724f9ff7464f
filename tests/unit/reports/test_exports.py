"""SARIF, OHDF and in-toto exports: valid against the published schemas, same counts as the run.

The pure conversions are tested on decoded records (every verdict, a waiver); the bundle side
on the golden v1 bundle, verified against its trust store. The real-bundle test and MITRE's
own reader are in tests/integration/test_exports.py.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.exceptions import InvalidSignature
from securesystemslib.exceptions import VerificationError

from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.reports.exports import export_bundle, render, write_atomic
from qualification.reports.exports.intoto import sign_statement, to_statement
from qualification.reports.exports.ohdf import to_ohdf
from qualification.reports.exports.sarif import to_sarif
from qualification.reports.exports.source import ExportSource, arrange, load_source
from qualification.signing import Ed25519Signer, TrustStore
from tests.unit.reports.exports_testlib import (
    SEAL,
    SEALED,
    SPEC,
    every_verdict_run,
    intoto_counts,
    ohdf_counts,
    sarif_counts,
    schema_errors,
    verify_with_cryptography,
    verify_with_securesystemslib,
)
from tests.unit.reports.reports_testlib import RunRecords

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "v1"
GOLDEN_EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
GOLDEN_BUNDLE = GOLDEN / GOLDEN_EXPECTED["bundle"]
@pytest.fixture
def records() -> RunRecords:
    return every_verdict_run()


@pytest.fixture
def source(records: RunRecords) -> ExportSource:
    return arrange(records.records, spec_doc=SPEC, sealed=SEALED, seal=SEAL)


def _end_counts(records: RunRecords) -> dict[str, int]:
    end = next(r for r in records.records if r["kind"] == "run.end")
    return dict(end["data"]["counts"])


def test_the_run_has_every_verdict(records: RunRecords) -> None:
    counts = _end_counts(records)
    assert all(counts[v] >= 1 for v in ("pass", "fail", "error", "not-executed", "waived"))


# --------------------------------------------------------------------------- SARIF
def test_sarif_is_valid_against_the_published_schema(source: ExportSource) -> None:
    log = to_sarif(source)
    assert schema_errors(log, "sarif-schema-2.1.0.json") == []


def test_the_schema_check_can_fail(source: ExportSource) -> None:
    log = to_sarif(source)
    log["runs"][0]["results"][0]["kind"] = "passed"  # not a SARIF result kind
    del log["runs"][0]["tool"]["driver"]["name"]
    errors = schema_errors(log, "sarif-schema-2.1.0.json")
    assert any("'passed' is not one of" in e for e in errors)
    assert any("'name' is a required property" in e for e in errors)


def test_sarif_has_the_runs_counts(records: RunRecords, source: ExportSource) -> None:
    assert sarif_counts(to_sarif(source)) == _end_counts(records) == source.counts()


def test_sarif_rules_are_the_spec_tests_with_urs_ids_and_acceptance(source: ExportSource) -> None:
    (run,) = to_sarif(source)["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("vqual", "0.1.0")
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {r.test_id for r in source.results}
    ssh = rules["IQ-SSH-01"]
    assert ssh["shortDescription"]["text"] == "Root login over SSH is disabled"
    assert ssh["fullDescription"]["text"] == "PermitRootLogin is no"
    assert ssh["properties"]["requirements"] == ["URS-CL-01", "URS-SEC-01"]
    # A test the spec copy does not list keeps the title its results carry.
    assert rules["IQ-HCL-02"]["shortDescription"]["text"] == "host model on the HCL"
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_results_name_the_target_as_logical_location(source: ExportSource) -> None:
    (run,) = to_sarif(source)["runs"]
    names = [loc["name"] for loc in run["logicalLocations"]]
    assert names == ["kvm1", "kvm2"]
    for result in run["results"]:
        (loc,) = result["locations"][0]["logicalLocations"]
        assert names[loc["index"]] == loc["name"] == loc["fullyQualifiedName"]


def _sarif_result(source: ExportSource, test_id: str, target: str) -> dict[str, Any]:
    (run,) = to_sarif(source)["runs"]
    return next(
        r for r in run["results"]
        if r["ruleId"] == test_id and r["locations"][0]["logicalLocations"][0]["name"] == target
    )


def test_sarif_waived_is_a_failure_with_an_accepted_external_suppression(
    source: ExportSource,
) -> None:
    result = _sarif_result(source, "OQ-MIG-01", "kvm1")
    assert (result["kind"], result["level"]) == ("fail", "error")
    (suppression,) = result["suppressions"]
    assert suppression["kind"] == "external" and suppression["status"] == "accepted"
    assert suppression["justification"] == "the lab network adds 450 ms; accepted by QA"
    assert suppression["properties"]["deviation"] == "DEV-0042"
    assert suppression["properties"]["approved_by"] == "Ada Approver"
    assert "DEV-0042" in result["message"]["text"]


def test_sarif_not_executed_is_not_applicable_with_its_reason(source: ExportSource) -> None:
    result = _sarif_result(source, "IQ-HCL-02", "kvm2")
    assert (result["kind"], result["level"]) == ("notApplicable", "none")
    assert "the test driver has no DMI data" in result["message"]["text"]
    assert "suppressions" not in result
    error = _sarif_result(source, "IQ-HCL-02", "kvm1")
    assert (error["kind"], error["level"]) == ("open", "none")
    assert "ssh timed out" in error["message"]["text"]
    (invocation,) = to_sarif(source)["runs"][0]["invocations"]
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and note["associatedRule"]["id"] == "IQ-HCL-02"
    assert note["locations"][0]["logicalLocations"][0]["name"] == "kvm1"


# --------------------------------------------------------------------------- OHDF
def test_ohdf_is_valid_against_the_published_schema(source: ExportSource) -> None:
    assert schema_errors(to_ohdf(source), "ohdf-exec-json.json") == []
    broken = to_ohdf(source)
    broken["profiles"][0]["controls"][0]["results"][0]["status"] = "waived"
    errors = schema_errors(broken, "ohdf-exec-json.json")
    assert any("'waived' is not valid" in e for e in errors), errors


def test_ohdf_has_the_runs_counts(records: RunRecords, source: ExportSource) -> None:
    assert ohdf_counts(to_ohdf(source)) == _end_counts(records)


def test_ohdf_waived_control_keeps_its_failure_and_carries_the_waiver(source: ExportSource) -> None:
    (profile,) = to_ohdf(source)["profiles"]
    controls = {c["id"]: c for c in profile["controls"]}
    waived = controls["OQ-MIG-01@kvm1"]
    assert waived["results"][0]["status"] == "failed"
    assert waived["waiver_data"]["justification"] == "the lab network adds 450 ms; accepted by QA"
    assert waived["waiver_data"]["expiration_date"] == "2027-01-31T00:00:00Z"
    assert "DEV-0042" in waived["waiver_data"]["message"]
    skipped = controls["IQ-HCL-02@kvm2"]["results"][0]
    assert skipped["status"] == "skipped"
    assert skipped["skip_message"] == "the test driver has no DMI data"
    assert controls["IQ-SSH-01@kvm1"]["tags"]["requirements"] == ["URS-CL-01"]


# --------------------------------------------------------------------------- in-toto
def test_statement_uses_the_test_result_predicate(records: RunRecords, source: ExportSource) -> None:
    statement = to_statement(source)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    assert statement["subject"] == [
        {"name": f.path, "digest": {"sha256": f.sha256}} for f in SEALED
    ]
    predicate = statement["predicate"]
    assert predicate["result"] == "FAILED"
    assert [c["name"] for c in predicate["configuration"]] == ["spec.yaml", "inventory.json"]
    assert predicate["warnedTests"] == ["OQ-MIG-01@kvm1"]
    assert "IQ-HCL-02@kvm2" in predicate["failedTests"]  # not executed is not passed
    assert intoto_counts(statement) == _end_counts(records)


@pytest.mark.parametrize(("verdicts", "outcome"), [
    (("pass", "pass"), "PASSED"), (("pass", "waived"), "WARNED"),
    (("waived", "not-executed"), "FAILED"), (("pass", "error"), "FAILED"),
])
def test_statement_result_follows_the_worst_verdict(verdicts: tuple[str, ...], outcome: str) -> None:
    run = RunRecords()
    run.start([{"name": "h1", "kinds": ["linux_host"], "risk": "low"}], [])
    for i, verdict in enumerate(verdicts):
        run.result(f"T-{i}", "h1", verdict, None,
                   deviation="DEV-1" if verdict == "waived" else None)
    run.end()
    src = arrange(run.records, spec_doc=None, sealed=SEALED, seal=SEAL)
    assert to_statement(src)["predicate"]["result"] == outcome


def test_an_unknown_verdict_is_never_exported_as_passed() -> None:
    run = RunRecords()
    run.start([{"name": "h1", "kinds": ["linux_host"], "risk": "low"}], [])
    run.result("T-1", "h1", "maybe", None)
    src = arrange(run.records, spec_doc=None, sealed=SEALED, seal=SEAL)
    (result,) = to_sarif(src)["runs"][0]["results"]
    assert result["kind"] == "fail"
    assert to_ohdf(src)["profiles"][0]["controls"][0]["results"][0]["status"] == "error"
    assert to_statement(src)["predicate"]["failedTests"] == ["T-1@h1"]


def test_envelope_verifies_with_securesystemslib_and_cryptography(source: ExportSource) -> None:
    signer = Ed25519Signer.generate()
    envelope = json.loads(render("in-toto", source, signer))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == signer.keyid
    statement = verify_with_securesystemslib(envelope, signer.public_key, signer.keyid)
    assert statement == to_statement(source)
    verify_with_cryptography(envelope, signer.public_key)


def test_a_changed_statement_or_another_key_does_not_verify(source: ExportSource) -> None:
    signer, other = Ed25519Signer.generate(), Ed25519Signer.generate()
    envelope = sign_statement(to_statement(source), signer).to_dict()
    with pytest.raises(VerificationError):
        verify_with_securesystemslib(envelope, other.public_key, signer.keyid)
    statement = to_statement(source)
    statement["predicate"]["result"] = "PASSED"
    forged = dict(envelope, payload=sign_statement(statement, other).to_dict()["payload"])
    with pytest.raises(VerificationError):
        verify_with_securesystemslib(forged, signer.public_key, signer.keyid)
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(forged, signer.public_key)


# --------------------------------------------------------------------------- from a bundle
@pytest.fixture(scope="module")
def golden_trust() -> TrustStore:
    return TrustStore.load(GOLDEN / "trust.yaml")


@pytest.mark.parametrize("fmt", ["sarif", "ohdf", "in-toto"])
def test_golden_bundle_exports_with_its_counts(fmt: str, golden_trust: TrustStore) -> None:
    signer = Ed25519Signer.generate()
    # The signer's trust is checked by export_bundle; here the conversion alone.
    src = load_source(GOLDEN_BUNDLE, golden_trust)
    doc = json.loads(render(fmt, src, signer))
    expected = GOLDEN_EXPECTED["counts"]
    if fmt == "sarif":
        assert schema_errors(doc, "sarif-schema-2.1.0.json") == []
        assert sarif_counts(doc) == expected
    elif fmt == "ohdf":
        assert schema_errors(doc, "ohdf-exec-json.json") == []
        assert ohdf_counts(doc) == expected
    else:
        statement = verify_with_securesystemslib(doc, signer.public_key, signer.keyid)
        assert intoto_counts(statement) == expected
        manifest = json.loads((GOLDEN_BUNDLE / "manifest.json").read_text())["files"]
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        assert subjects == {**manifest, "manifest.json": subjects["manifest.json"]}
        assert statement["predicate"]["vqual"]["seal"] == GOLDEN_EXPECTED["seal_digest"]


def test_a_spec_copy_without_tests_gives_rules_from_the_results(golden_trust: TrustStore) -> None:
    spec = yaml.safe_load((GOLDEN_BUNDLE / "spec.yaml").read_text())
    assert "tests" not in spec  # the golden spec copy names the protocol only
    src = load_source(GOLDEN_BUNDLE, golden_trust)
    titles = {r.test_id: r.title for r in src.results}
    assert {t.id: t.title for t in src.tests} == titles
    assert all(t.acceptance == "" for t in src.tests)


def test_an_invalid_bundle_is_refused(tmp_path: Path, golden_trust: TrustStore) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(GOLDEN_BUNDLE, copy)
    (copy / "junit.xml").write_text("<testsuites/>")
    with pytest.raises(EvidenceInvalidError, match="junit.xml"):
        export_bundle(copy, golden_trust, "sarif")


def test_unknown_format_and_missing_bundle_are_bad_input(
    tmp_path: Path, golden_trust: TrustStore
) -> None:
    with pytest.raises(BadInputError, match="unknown export format 'xml'"):
        export_bundle(GOLDEN_BUNDLE, golden_trust, "xml")
    with pytest.raises(BadInputError, match="not an evidence bundle"):
        export_bundle(tmp_path / "nope", golden_trust, "sarif")


def test_write_atomic_leaves_nothing_when_it_cannot_write(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_atomic(target, b"{}\n")
    assert target.read_bytes() == b"{}\n"
    with pytest.raises(BadInputError):
        write_atomic(tmp_path / "missing" / "out.json", b"{}")
    with pytest.raises(BadInputError, match="is a directory"):
        write_atomic(tmp_path, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_atomic_removes_its_temporary_file_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    def full_disk(src: str, dst: str) -> None:  # stands in for a disk that fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(BadInputError, match="No space left on device"):
        write_atomic(tmp_path / "out.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_in_totos_own_bindings_accept_the_statement(source: ExportSource) -> None:
    # in-toto-attestation (PyPI) is not a dependency of vqual; with it installed, its
    # Statement validation runs on the signed payload.
    spb = pytest.importorskip("in_toto_attestation.v1.statement_pb2",
                              reason="in-toto-attestation is not installed")
    from google.protobuf import json_format
    from in_toto_attestation.v1.statement import Statement

    envelope = json.loads(render("in-toto", source, Ed25519Signer.generate()))
    payload = base64.b64decode(envelope["payload"])
    statement = Statement.copy_from_pb(json_format.Parse(payload, spb.Statement()))
    statement.validate()  # raises ValueError on a malformed statement or subject
    assert len(statement.pb.subject) == len(SEALED)
    assert statement.pb.predicate_type == "https://in-toto.io/attestation/test-result/v0.1"
