"""A `check: testinfra` spec test as the loader makes it: one test per function, the module a
data file of the spec, and a module that cannot run refused at load naming the spec test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from qualification.errors import SpecError
from qualification.review import approval
from qualification.spec.loader import load_spec

SUITE = b'''import pytest


@pytest.mark.urs("URS-SEC-01")
def test_a(host):
    pass


def test_b(host):
    pass
'''


def _spec(tmp_path: Path, module: str, **extra: object) -> Path:
    test = {
        "id": "IQ-TI-001", "title": "Site suite", "protocol": "IQ",
        "requirements": ["URS-HV-02"], "applies_to": ["linux_host"], "risk": ["high"],
        "check": "testinfra", "params": {"module": module, **extra},
        "expect": {"op": "equals", "value": "passed"}, "acceptance": "all pass",
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "ti", "title": "ti", "version": "1"},
        "requirements": ["URS-HV-02", "URS-SEC-01"], "tests": [test]}, sort_keys=False))
    return path


def test_one_test_per_function_with_marker_requirements(tmp_path: Path) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_s.py").write_bytes(SUITE)
    spec = load_spec(_spec(tmp_path, "suite/test_s.py"))
    assert [(t.id, t.requirements) for t in spec.tests] == [
        ("IQ-TI-001::test_a", ("URS-HV-02", "URS-SEC-01")),
        ("IQ-TI-001::test_b", ("URS-HV-02",)),
    ]
    assert spec.tests[0].title == "Site suite: test_a"
    assert spec.tests[0].params["path"] == str(tmp_path / "suite" / "test_s.py")


def test_the_module_is_a_data_file_of_the_spec(tmp_path: Path) -> None:
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_s.py").write_bytes(SUITE)
    spec = load_spec(_spec(tmp_path, "suite/test_s.py::test_b"))
    (data,) = spec.data_files
    assert data.name == "testinfra/test_s.py" and data.declared == "suite/test_s.py"
    assert data.digest == hashlib.sha256(SUITE).hexdigest() and data.raw == SUITE
    # So what a protocol approval signs covers the suite, and a changed suite needs another.
    _, covered = approval._covered(spec)
    assert covered == [{"name": "testinfra/test_s.py", "digest": data.digest}]
    (tmp_path / "suite" / "test_s.py").write_bytes(SUITE + b"\n# edited\n")
    assert approval._covered(load_spec(_spec(tmp_path, "suite/test_s.py::test_b")))[1] != covered


@pytest.mark.parametrize(
    ("source", "module", "message"),
    [
        (None, "suite/test_s.py", "testinfra module not found"),
        (b"def test_a(host)\n", "suite/test_s.py", "is not valid Python (line 1)"),
        (b"X = 1\n", "suite/test_s.py", "has no tests"),
        (SUITE, "suite/test_s.py::test_c", "no test 'test_c'"),
    ],
)
def test_a_module_that_cannot_run_is_a_spec_error_naming_the_test(
    tmp_path: Path, source: bytes | None, module: str, message: str
) -> None:
    (tmp_path / "suite").mkdir()
    if source is not None:
        (tmp_path / "suite" / "test_s.py").write_bytes(source)
    with pytest.raises(SpecError) as raised:
        load_spec(_spec(tmp_path, module))
    line = raised.value.one_line()
    assert "spec.yaml:" in line and "tests[0].params.module" in line
    assert "test IQ-TI-001: " in line and message in line and "\n" not in line


def test_bad_params_are_refused_before_the_module_is_read(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="backend must be one of"):
        load_spec(_spec(tmp_path, "suite/test_s.py", backend="docker"))
