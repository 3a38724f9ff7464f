"""Specs and data files read with libyaml's C parser give the data the pure-Python parser
gives (VQ-95): every shipped spec and data file, a 1,000-test spec as the per-check bench
writes it (its located document: data and the line of every field path, and the loaded
spec), and the fall-back when PyYAML has no libyaml."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from qualification import yamlio
from qualification.spec import source
from qualification.spec.loader import load_spec
from tests.conftest import REPO

SPECS = REPO / "ansible_collections" / "vqual" / "qualification" / "specs"
SHIPPED = sorted(SPECS.rglob("*.yaml"))

needs_libyaml = pytest.mark.skipif(
    not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml"
)


def _big_spec(path: Path, n: int = 1000) -> Path:
    tests = [
        {"id": f"IQ-BENCH-{i + 1:04d}", "title": f"file_mode /etc/f{i}", "protocol": "IQ",
         "requirements": ["URS-HV-02"], "applies_to": ["linux_host"],
         "risk": ["high", "medium", "low"], "check": "file_mode",
         "params": {"path": f"/etc/f{i}"}, "expect": {"op": "regex", "value": ".*"},
         "acceptance": "observed"}
        for i in range(n)
    ]
    path.write_text(yaml.safe_dump({
        "apiVersion": "vqual/v1", "kind": "Protocol",
        "metadata": {"name": "bench", "title": "bench", "version": "1.0"},
        "requirements": ["URS-HV-02"], "tests": tests,
    }))
    return path


@needs_libyaml
def test_the_c_parser_is_used_when_pyyaml_has_it() -> None:
    assert yamlio.SAFE_LOADER is yaml.CSafeLoader
    assert source._Loader is yaml.CSafeLoader


@needs_libyaml
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_shipped_spec_and_data_file_reads_the_same_with_both_parsers(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text("utf-8")
    assert yamlio.safe_load(text) == yaml.load(text, Loader=yaml.SafeLoader)
    fast = source.load_located(text, str(path))
    monkeypatch.setattr(source, "_Loader", yaml.SafeLoader)
    slow = source.load_located(text, str(path))
    assert fast.data == slow.data and fast.data is not None
    assert fast.lines == slow.lines


@needs_libyaml
def test_a_thousand_test_spec_loads_identically_with_both_parsers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big_spec(tmp_path / "spec.yaml")
    text = path.read_text("utf-8")
    fast_doc, fast_spec = source.load_located(text, "s"), load_spec(path)
    monkeypatch.setattr(source, "_Loader", yaml.SafeLoader)
    slow_doc, slow_spec = source.load_located(text, "s"), load_spec(path)
    assert fast_doc.data == slow_doc.data and fast_doc.lines == slow_doc.lines
    assert len(fast_spec.tests) == 1000
    assert fast_spec == slow_spec


def test_the_pure_python_parser_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    try:
        reloaded = importlib.reload(yamlio)
        assert reloaded.SAFE_LOADER is yaml.SafeLoader
        assert reloaded.safe_load("a: [1, x, 2.5, null, true]") == {
            "a": [1, "x", 2.5, None, True]
        }
    finally:
        monkeypatch.undo()
        importlib.reload(yamlio)
