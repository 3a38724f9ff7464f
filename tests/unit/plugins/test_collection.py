"""The collection is well formed: ansible-doc shows every plugin, galaxy builds it."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO),
           PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

MODULES = sorted(p.stem for p in (COLLECTION / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
CALLBACKS = sorted(p.stem for p in (COLLECTION / "plugins" / "callback").glob("*.py") if p.stem != "__init__")


def test_every_action_plugin_has_a_documented_module_name() -> None:
    actions = {p.stem for p in (COLLECTION / "plugins" / "action").glob("*.py") if p.stem != "__init__"}
    assert actions <= set(MODULES)


@pytest.mark.parametrize(("kind", "name"), [("module", m) for m in MODULES] + [("callback", c) for c in CALLBACKS])
def test_ansible_doc_shows_the_plugin(kind: str, name: str) -> None:
    done = subprocess.run([str(BIN / "ansible-doc"), "-t", kind, "--json", f"vqual.qualification.{name}"],
                          env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    import json

    doc = json.loads(done.stdout)[f"vqual.qualification.{name}"]
    assert doc["doc"]["short_description"]
    if kind == "module":
        assert doc["examples"] and f"vqual.qualification.{name}" in doc["examples"]
        assert doc["return"] is not None
        assert {"check_mode", "diff_mode"} <= set(doc["doc"].get("attributes", {}))


def test_galaxy_builds_the_collection_without_the_package_and_tests(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
                           "--output-path", str(tmp_path)],
                          env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    tarball = next(tmp_path.glob("vqual-qualification-*.tar.gz"))
    names = tarfile.open(tarball).getnames()
    assert "plugins/action/qualify.py" in names and "playbooks/qualify.yml" in names
    assert "specs/linux-virt-host.yaml" in names and "README.md" in names
    assert not any(n.startswith(("qualification/", "bench/", "lab/", ".venv", "docs/"))
                   for n in names)
    # The collection's own sanity ignore file ships (certification reads it); nothing else of
    # tests/, and never what a sanity run wrote (tests/output).
    assert {n for n in names if n.startswith("tests/") and n.endswith(".txt")} == {
        "tests/sanity/ignore-2.19.txt"}
    assert not any(n.startswith("tests/output") or n.endswith(".py") and n.startswith("tests/")
                   for n in names)
