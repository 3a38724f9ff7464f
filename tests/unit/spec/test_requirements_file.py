"""The requirements file a spec references (docs/spec.md, "Requirements file"): loading,
its errors, and the seed's file the shipped specs reference, held true to the specs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qualification.errors import SpecError
from qualification.selftest import self_checks
from qualification.spec import load_spec
from tests.unit.spec.spec_testlib import VALID_SPEC, TinyRegistry, line_of

SPECS = Path(__file__).resolve().parents[3] / "ansible_collections/vqual/qualification/specs"
SHIPPED = sorted(SPECS.glob("*.yaml"))

REQUIREMENTS = """\
apiVersion: vqual/v1
kind: Requirements
metadata: {name: site-urs, title: Site URS, version: "2"}
requirements:
  - id: URS-HV-02
    text: The hypervisor installation is verified.
  - id: URS-SEC-01
    text: >-
      Access is restricted
      as far as possible.
    specs: [other-spec]
  - id: URS-CONV-01
    text: Conversions are proven complete.
    procedure: {sop: SOP-1, document: sops/conv.md, digest: DIGEST}
  - id: URS-TOOL-01
    text: Tools are verified.
    evidence: [ST-OQ-02]
"""

WITH_FILE = VALID_SPEC.replace(
    "tests:", "data_files:\n  urs: urs.yaml\nrequirements_file: urs\ntests:", 1
)


def _write(tmp_path: Path, spec: str = WITH_FILE, urs: str = REQUIREMENTS) -> Path:
    (tmp_path / "sops").mkdir(exist_ok=True)
    doc = tmp_path / "sops" / "conv.md"
    doc.write_text("# SOP-1\n")
    digest = hashlib.sha256(doc.read_bytes()).hexdigest()
    (tmp_path / "urs.yaml").write_text(urs.replace("DIGEST", digest))
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    return path


def test_the_requirements_file_gives_each_requirement_its_text_and_coverage(tmp_path):
    spec = load_spec(_write(tmp_path), registry=TinyRegistry())
    assert spec.requirements_file == "urs"
    by_id = {r.id: r for r in spec.traceability}
    assert list(by_id) == ["URS-HV-02", "URS-SEC-01", "URS-CONV-01", "URS-TOOL-01"]
    assert by_id["URS-SEC-01"].text == "Access is restricted as far as possible."
    assert by_id["URS-SEC-01"].specs == ("other-spec",)
    assert by_id["URS-TOOL-01"].evidence == ("ST-OQ-02",)
    proc = by_id["URS-CONV-01"].procedure
    assert proc is not None and proc.sop == "SOP-1" and proc.document == "sops/conv.md"
    assert proc.digest == hashlib.sha256(b"# SOP-1\n").hexdigest()
    # the file is a data file: sealed in the bundle and covered by the protocol approval
    assert [d.name for d in spec.data_files] == ["urs"]
    record = spec.traceability_record()
    assert record is not None and record["file"] == "urs"
    assert record["requirements"][2]["procedure"]["digest"] == proc.digest


def test_a_declared_requirement_missing_from_the_file_is_refused_at_its_line(tmp_path):
    spec_text = WITH_FILE.replace("requirements: [URS-HV-02, URS-SEC-01]",
                                  "requirements: [URS-HV-02, URS-SEC-01, URS-X-09]")
    spec_text = spec_text.replace("requirements: [URS-HV-02]", "requirements: [URS-X-09]", 1)
    path = _write(tmp_path, spec_text)
    with pytest.raises(SpecError) as err:
        load_spec(path, registry=TinyRegistry())
    assert "requirements[2]: 'URS-X-09' is not in the requirements file urs.yaml" in str(err.value)


def test_a_requirements_file_that_is_not_a_data_file_is_refused(tmp_path):
    path = _write(tmp_path, WITH_FILE.replace("requirements_file: urs", "requirements_file: hcl"))
    with pytest.raises(SpecError) as err:
        load_spec(path, registry=TinyRegistry())
    assert "requirements_file: names no data file 'hcl' (data_files: urs)" in str(err.value)


def test_a_procedure_document_that_changed_is_refused_naming_both_digests(tmp_path):
    path = _write(tmp_path)
    (tmp_path / "sops" / "conv.md").write_text("# SOP-1, edited\n")
    with pytest.raises(SpecError) as err:
        load_spec(path, registry=TinyRegistry())
    text = str(err.value)
    assert f"urs.yaml:{line_of(REQUIREMENTS, 'procedure:')}" in text
    assert "sops/conv.md has sha256 " + hashlib.sha256(b"# SOP-1, edited\n").hexdigest() in text


@pytest.mark.parametrize(
    ("urs", "message"),
    [
        (REQUIREMENTS.replace("id: URS-TOOL-01", "id: URS-HV-02"), "duplicate requirement"),
        (REQUIREMENTS.replace("kind: Requirements", "kind: Protocol"), "'Requirements' was"),
        (REQUIREMENTS.replace("[ST-OQ-02]", "[VQ-03]"), "does not match"),
        (REQUIREMENTS.replace("document: sops/conv.md", "document: ../conv.md"), "relative"),
    ],
)
def test_a_malformed_requirements_file_is_refused(tmp_path, urs, message):
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, urs=urs), registry=TinyRegistry())
    assert message in str(err.value)


# ---------------------------------------------------------------- the shipped file


def _shipped():
    return {path.stem: load_spec(path) for path in SHIPPED}


def test_every_shipped_spec_references_the_seed_requirements_file_with_all_29():
    specs = _shipped()
    assert len(specs) >= 6
    for name, spec in specs.items():
        assert spec.requirements_file == "urs", name
        assert spec.data_file("urs").path.name == "urs-seed.yaml"
        assert len(spec.traceability) == 29, name
        assert all(r.text for r in spec.traceability)


def test_the_specs_each_requirement_names_are_exactly_the_shipped_specs_whose_tests_cite_it():
    specs = _shipped()
    citing: dict[str, set[str]] = {}
    for spec in specs.values():
        for test in spec.tests:
            for requirement in test.requirements:
                citing.setdefault(requirement, set()).add(spec.name)
    for requirement in next(iter(specs.values())).traceability:
        assert set(requirement.specs) == citing.get(requirement.id, set()), requirement.id


def test_the_evidence_the_file_names_is_checks_vqual_selftest_runs():
    known = {check.test_id for check in self_checks(None, lambda: None)}  # type: ignore[arg-type,return-value]
    named = {e for r in _shipped()["kvm-cluster"].traceability for e in r.evidence}
    assert named and named <= known, named - known
