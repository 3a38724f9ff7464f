"""Finding the collection and the content it ships (specs, change files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualification.errors import BadInputError
from qualification.execution.collection import (
    collection_version,
    find_collection_root,
    find_shipped,
)

REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "ansible_collections" / "vqual" / "qualification"


def test_the_checkout_collection_is_found_beside_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VQUAL_COLLECTION_ROOT", raising=False)
    assert find_collection_root() == COLLECTION.resolve()


def test_an_installed_collection_with_manifest_json_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ansible_collections" / "vqual" / "qualification"
    (root / "plugins").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "MANIFEST.json").write_text('{"collection_info": {"version": "0.1.0"}}')
    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(root))
    assert find_collection_root() == root.resolve()
    assert collection_version(root) == "0.1.0"


def test_a_folder_that_is_no_collection_is_bad_input(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(tmp_path))
    with pytest.raises(BadInputError, match="is not the vqual collection"):
        find_collection_root()


@pytest.mark.parametrize("given", ["specs/linux-virt-host.yaml", "linux-virt-host",
                                   "linux-virt-host.yaml"])
def test_shipped_specs_are_found_from_any_directory(
        given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_shipped(Path(given)) == COLLECTION.resolve() / "specs" / "linux-virt-host.yaml"


def test_a_file_where_the_user_is_wins_and_absolute_paths_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    own = Path("specs") / "linux-virt-host.yaml"
    own.write_text("mine")
    assert find_shipped(own) == own
    missing = tmp_path / "nowhere.yaml"
    assert find_shipped(missing) == missing
    assert find_shipped(Path("no-such-spec")) == Path("no-such-spec")
