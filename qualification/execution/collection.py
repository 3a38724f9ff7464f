"""Where the ``vqual.qualification`` collection is, so the CLI can run its playbooks.

vqual ships as two artefacts, each where its ecosystem looks for it: the ``vqual`` wheel (pip)
and the collection tarball (``ansible-galaxy collection install``). vqual finds the collection
where Ansible would (docs/install.md) and runs only one of its own version.
"""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

import yaml

from qualification import __version__
from qualification.errors import BadInputError

_NAMESPACE, _NAME = "vqual", "qualification"


def _is_collection_root(path: Path) -> bool:
    # A source tree carries galaxy.yml; an installed collection (ansible-galaxy) MANIFEST.json.
    has_metadata = (path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file()
    return has_metadata and (path / "plugins").is_dir() and (path / "playbooks").is_dir()


def _split(value: str, base: Path | None = None) -> list[Path]:
    found = []
    for item in value.split(os.pathsep):
        if item.strip():
            path = Path(os.path.expandvars(item.strip())).expanduser()
            found.append(base / path if base is not None and not path.is_absolute() else path)
    return found


def _ansible_cfg_paths() -> list[Path] | None:
    """``collections_path`` of the ansible.cfg Ansible would read, if it sets one.

    The file is the first of ``$ANSIBLE_CONFIG``, ``./ansible.cfg``, ``~/.ansible.cfg`` and
    ``/etc/ansible/ansible.cfg``; a relative entry is relative to the file, as for Ansible.
    """
    candidates = [os.environ.get("ANSIBLE_CONFIG", ""), "ansible.cfg",
                  str(Path.home() / ".ansible.cfg"), "/etc/ansible/ansible.cfg"]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(candidate, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            return None  # Ansible itself will say what is wrong with the file
        for key in ("collections_path", "collections_paths"):
            if parser.has_option("defaults", key):
                return _split(parser.get("defaults", key), Path(candidate).resolve().parent)
        return None
    return None


def search_paths() -> list[Path]:
    """The collection paths Ansible searches here, in its order.

    ``$ANSIBLE_COLLECTIONS_PATH``, else ``collections_path`` of ansible.cfg, else
    ``$ANSIBLE_HOME/collections`` (``~/.ansible/collections``) and
    ``/usr/share/ansible/collections``; then the ``sys.path`` entries (Ansible scans them too).
    """
    return _configured_paths() + [Path(p) for p in sys.path if p]


def _configured_paths() -> list[Path]:
    explicit = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    paths = _split(explicit) if explicit is not None else _ansible_cfg_paths()
    if paths is None:
        home = Path(os.environ.get("ANSIBLE_HOME") or Path.home() / ".ansible").expanduser()
        paths = [home / "collections", Path("/usr/share/ansible/collections")]
    return paths


def find_collection_root() -> Path:
    """The collection's root directory.

    Order: ``$VQUAL_COLLECTION_ROOT``; the checkout this package runs from (the collection is
    ``ansible_collections/vqual/qualification`` beside ``qualification/``); then
    ``ansible_collections/vqual/qualification`` under each of :func:`search_paths`.
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
    for base in search_paths():
        root = base / "ansible_collections" / _NAMESPACE / _NAME
        if _is_collection_root(root):
            return root.resolve()
    raise BadInputError(
        "the vqual.qualification collection was not found: install it "
        "(ansible-galaxy collection install) or set VQUAL_COLLECTION_ROOT"
    )


def collection_for_run() -> Path:
    """:func:`find_collection_root`, refused unless it is this package's version.

    The collection's action plugins and the evidence callback import this package: a
    collection of another version would run its playbooks against code it was not released
    with, so a run stops before anything executes.

    Raises:
        BadInputError: no collection, or one whose version is not the package's.
    """
    root = find_collection_root()
    found = collection_version(root)
    if found != __version__:
        raise BadInputError(
            f"the vqual.qualification collection at {root} is version {found or '(none)'} "
            f"but the vqual package is {__version__}: install the same version of both"
        )
    return root


def collections_path(root: Path, scratch: Path) -> str:
    """An ``ANSIBLE_COLLECTIONS_PATH`` under which ``root`` is ``vqual.qualification``.

    ``root``'s own collections path comes first, then the paths the user's Ansible searches
    (so an inventory plugin from another installed collection still loads).
    """
    if root.parent.name == _NAMESPACE and root.parent.parent.name == "ansible_collections":
        ours = root.parent.parent.parent
    else:
        link_dir = scratch / "collections" / "ansible_collections" / _NAMESPACE
        link_dir.mkdir(parents=True, exist_ok=True)
        link = link_dir / _NAME
        if not link.exists():
            link.symlink_to(root, target_is_directory=True)
        ours = scratch / "collections"
    paths = [str(ours)] + [str(p.resolve()) for p in _configured_paths()]
    return os.pathsep.join(dict.fromkeys(paths))


def find_shipped(path: Path, root: Path | None = None) -> Path:
    """``path`` as given if it exists, else the collection's own copy of it.

    So ``--spec specs/linux-virt-host.yaml`` (or ``--spec linux-virt-host``) and ``--change
    specs/changes/lab-kvm-agent-1.1.yaml`` name the shipped protocols and change files from any
    working directory. A path that exists where the user is always wins; an absolute path is
    never redirected. Returns ``path`` unchanged when nothing is found, so the loader reports it.
    ``root`` is the collection to look in (default :func:`find_collection_root`).
    """
    if path.exists() or path.is_absolute():
        return path
    if root is None:
        try:
            root = find_collection_root()
        except BadInputError:
            return path
    for candidate in (root / path, root / "specs" / path, root / "specs" / f"{path}.yaml"):
        if candidate.is_file():
            return candidate
    return path


def shipped_specs(root: Path) -> list[Path]:
    """The protocols a collection ships (``specs/*.yaml``), by name."""
    return sorted((root / "specs").glob("*.yaml"))


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
