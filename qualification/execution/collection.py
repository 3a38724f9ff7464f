"""Where the ``vqual.qualification`` collection is, so the CLI can run its playbooks."""

from __future__ import annotations

import os
import json
from pathlib import Path

import yaml

from qualification.errors import BadInputError

_NAMESPACE, _NAME = "vqual", "qualification"


def _is_collection_root(path: Path) -> bool:
    # A source tree carries galaxy.yml; an installed collection (ansible-galaxy) MANIFEST.json.
    has_metadata = (path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file()
    return has_metadata and (path / "plugins").is_dir() and (path / "playbooks").is_dir()


def find_collection_root() -> Path:
    """The collection's root directory.

    Order: ``$VQUAL_COLLECTION_ROOT``; the checkout this package runs from (the collection is
    ``ansible_collections/vqual/qualification`` beside ``qualification/``);
    ``ansible_collections/vqual/qualification`` on
    ``$ANSIBLE_COLLECTIONS_PATH`` or Ansible's default paths.
    """
    explicit = os.environ.get("VQUAL_COLLECTION_ROOT")
    if explicit:
        root = Path(explicit)
        if not _is_collection_root(root):
            raise BadInputError(f"VQUAL_COLLECTION_ROOT={explicit} is not the vqual collection")
        return root.resolve()
    checkout = Path(__file__).resolve().parents[2] / "ansible_collections" / _NAMESPACE / _NAME
    if _is_collection_root(checkout):
        return checkout
    search = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    paths = [p for p in search.split(os.pathsep) if p] + [
        str(Path.home() / ".ansible" / "collections"),
        "/usr/share/ansible/collections",
    ]
    for base in paths:
        root = Path(base) / "ansible_collections" / _NAMESPACE / _NAME
        if _is_collection_root(root):
            return root.resolve()
    raise BadInputError(
        "the vqual.qualification collection was not found: install it "
        "(ansible-galaxy collection install) or set VQUAL_COLLECTION_ROOT"
    )


def collections_path(root: Path, scratch: Path) -> str:
    """An ``ANSIBLE_COLLECTIONS_PATH`` under which ``root`` is ``vqual.qualification``."""
    if root.parent.name == _NAMESPACE and root.parent.parent.name == "ansible_collections":
        return str(root.parent.parent.parent)
    link_dir = scratch / "collections" / "ansible_collections" / _NAMESPACE
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / _NAME
    if not link.exists():
        link.symlink_to(root, target_is_directory=True)
    return str(scratch / "collections")


def find_shipped(path: Path) -> Path:
    """``path`` as given if it exists, else the collection's own copy of it.

    So ``--spec specs/linux-virt-host.yaml`` (or ``--spec linux-virt-host``) and ``--change
    specs/changes/lab-kvm-agent-1.1.yaml`` name the shipped protocols and change files from any
    working directory. A path that exists where the user is always wins; an absolute path is
    never redirected. Returns ``path`` unchanged when nothing is found, so the loader reports it.
    """
    if path.exists() or path.is_absolute():
        return path
    try:
        root = find_collection_root()
    except BadInputError:
        return path
    for candidate in (root / path, root / "specs" / path, root / "specs" / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def collection_version(root: Path) -> str | None:
    """The version a collection root declares (``galaxy.yml``, or an install's MANIFEST.json)."""
    try:
        if (root / "MANIFEST.json").is_file():
            info = json.loads((root / "MANIFEST.json").read_text("utf-8"))["collection_info"]
        else:
            info = yaml.safe_load((root / "galaxy.yml").read_text("utf-8"))
        version = info.get("version") if isinstance(info, dict) else None
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None
    return str(version) if version is not None else None
