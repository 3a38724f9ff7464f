"""Finding the collection and the content it ships (specs, change files)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from qualification import __version__
from qualification.errors import BadInputError
from qualification.execution.collection import (
    collection_for_run,
    collection_version,
    collections_path,
    find_collection_root,
    find_shipped,
    search_paths,
    shipped_specs,
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


def _installed(base: Path, version: str) -> Path:
    """A collection as ansible-galaxy installs it (MANIFEST.json) under collections path base."""
    root = base / "ansible_collections" / "vqual" / "qualification"
    (root / "plugins").mkdir(parents=True)
    (root / "playbooks").mkdir()
    (root / "specs").mkdir()
    (root / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": version}}))
    return root


def test_a_run_refuses_a_collection_of_another_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    same = _installed(tmp_path / "same", __version__)
    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(same))
    assert collection_for_run() == same.resolve()
    other = _installed(tmp_path / "other", "0.0.9")
    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(other))
    with pytest.raises(BadInputError) as caught:
        collection_for_run()
    assert caught.value.exit_code == 2
    assert caught.value.one_line() == (
        f"the vqual.qualification collection at {other.resolve()} is version 0.0.9 "
        f"but the vqual package is {__version__}: install the same version of both")
    assert find_collection_root() == other.resolve()  # found; only a run refuses it


def test_the_checkout_collection_is_the_package_version() -> None:
    assert collection_version(COLLECTION) == __version__


def test_the_search_paths_follow_ansible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "ansible-home"))
    # Ansible's defaults, then sys.path (Ansible scans it for ansible_collections too).
    found = search_paths()
    assert found[:2] == [tmp_path / "ansible-home" / "collections",
                         Path("/usr/share/ansible/collections")]
    assert found[2:] == [Path(p) for p in sys.path if p]
    # ansible.cfg where the user stands: a relative entry is relative to the file.
    (tmp_path / "ansible.cfg").write_text("[defaults]\ncollections_path = ./mine:/site\n")
    assert search_paths()[:2] == [tmp_path / "mine", Path("/site")]
    # The environment wins over ansible.cfg.
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", f"{tmp_path / 'env'}{os.pathsep}/other")
    assert search_paths()[:2] == [tmp_path / "env", Path("/other")]


def test_collections_path_puts_the_collection_first_and_keeps_the_users(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", f"{tmp_path / 'site'}{os.pathsep}{REPO}")
    root = _installed(tmp_path / "installed", __version__)
    assert collections_path(root, tmp_path / "scratch").split(os.pathsep) == [
        str(tmp_path / "installed"), str(tmp_path / "site"), str(REPO)]
    # A root outside an ansible_collections tree is linked into one in the scratch dir.
    loose = tmp_path / "loose"
    loose.mkdir()
    paths = collections_path(loose, tmp_path / "scratch").split(os.pathsep)
    assert paths[0] == str(tmp_path / "scratch" / "collections")
    assert (tmp_path / "scratch" / "collections" / "ansible_collections" / "vqual"
            / "qualification").resolve() == loose


def test_a_collection_found_on_a_collections_path_ships_its_specs_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _installed(tmp_path / "installed", __version__)
    (root / "specs" / "site-host.yaml").write_text("apiVersion: vqual/v1\n")
    monkeypatch.chdir(tmp_path)
    assert shipped_specs(root) == [root / "specs" / "site-host.yaml"]
    assert find_shipped(Path("site-host"), root=root) == root / "specs" / "site-host.yaml"
    assert find_shipped(Path("specs/site-host.yaml"), root=root) == root / "specs" / "site-host.yaml"
    assert find_shipped(Path("other-host"), root=root) == Path("other-host")
    assert [p.name for p in shipped_specs(COLLECTION)] == sorted(
        p.name for p in (COLLECTION / "specs").glob("*.yaml"))


def test_a_rolling_patch_that_requalifies_with_qualify_refuses_it_before_any_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qualification.rollout.requalify import QualifyRequalifier

    monkeypatch.setenv("VQUAL_COLLECTION_ROOT", str(_installed(tmp_path, "0.0.9")))
    with pytest.raises(BadInputError, match="is version 0.0.9 but the vqual package is"):
        QualifyRequalifier(inventory=tmp_path, key_file=tmp_path / "k.pem",
                           passphrase_reader=lambda: b"", evidence_dir=tmp_path,
                           state_dir=tmp_path, initiator="ci")
