"""Where the ``vqual.qualification`` collection is, so the CLI can run its playbooks."""

from __future__ import annotations

import os
from pathlib import Path

from qualification.errors import BadInputError

_NAMESPACE, _NAME = "vqual", "qualification"


def _is_collection_root(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() and (path / "plugins").is_dir() and (
        path / "playbooks"
    ).is_dir()


def find_collection_root() -> Path:
    """The collection's root directory.

    Order: ``$VQUAL_COLLECTION_ROOT``; the checkout this package runs from (the repo root is
    the collection root); ``ansible_collections/vqual/qualification`` on
    ``$ANSIBLE_COLLECTIONS_PATH`` or Ansible's default paths.
    """
    explicit = os.environ.get("VQUAL_COLLECTION_ROOT")
    if explicit:
        root = Path(explicit)
        if not _is_collection_root(root):
            raise BadInputError(f"VQUAL_COLLECTION_ROOT={explicit} is not the vqual collection")
        return root.resolve()
    checkout = Path(__file__).resolve().parents[2]
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
