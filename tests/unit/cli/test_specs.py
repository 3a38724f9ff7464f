"""``vqual specs``: the protocols and change files the collection ships, by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualification import __version__
from qualification.cli import main

COLLECTION = Path(__file__).resolve().parents[3] / "ansible_collections" / "vqual" / "qualification"


def test_specs_lists_every_shipped_spec_with_its_title_and_test_count(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VQUAL_COLLECTION_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)  # from anywhere
    result = CliRunner().invoke(main, ["specs", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["schema"] == "vqual.specs/v1" and listed["version"] == __version__
    shipped = sorted(p.stem for p in (COLLECTION / "specs").glob("*.yaml"))
    assert [s["name"] for s in listed["specs"]] == shipped
    embedded = next(s for s in listed["specs"] if s["name"] == "libvirt-embedded")
    assert embedded["tests"] == 18 and embedded["applies_to"] == ["libvirt_hypervisor"]
    assert embedded["title"].startswith("Installation and operational qualification")
    assert {c["name"] for c in listed["changes"]} == {
        f"specs/changes/{p.name}" for p in (COLLECTION / "specs" / "changes").glob("*.yaml")}

    text = CliRunner().invoke(main, ["specs"]).output
    assert text.splitlines()[0] == f"vqual.qualification {__version__} at {COLLECTION}"
    assert all(f"  {name} " in text for name in shipped)


def test_specs_names_a_spec_that_cannot_be_read_and_a_collection_of_another_version(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "ansible_collections" / "vqual" / "qualification"
    for folder in ("plugins", "playbooks", "specs"):
        (root / folder).mkdir(parents=True)
    (root / "MANIFEST.json").write_text('{"collection_info": {"version": "0.0.9"}}')
    (root / "specs" / "broken.yaml").write_text("apiVersion: vqual/v1\nkind: Protocol\n")
    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(root))
    result = CliRunner().invoke(main, ["specs"])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()[:2]
    assert first.endswith(f"(not this vqual's {__version__}: runs refused)")
    assert second.startswith("  broken  cannot be read: ")
