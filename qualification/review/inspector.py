"""One folder an inspector verifies offline: a change's bundles and everything they rest on.

``vqual export --inspector evidence/<change>`` verifies the change first and then writes a new
folder (docs/inspector.md):

- ``evidence/<change>/<run>/``: every run, byte for byte, without ``views/`` (renderings made
  later are not evidence);
- ``trust/trust.yaml`` and ``trust/trust-history/``: the trust store and its signed versions;
- ``<name>`` at the top: what the caller adds for the trust it judged with (the pinned
  root's file, ``trust-root.yaml``): outside ``trust/``, which is laid out as a state
  directory (``vqual verify --state-dir <folder>/trust``) and may not hold its own pin;
- ``trust/keys.securesystemslib.json``: every trusted key in securesystemslib's key format,
  under the key id the record envelopes carry, with its sslib default key id, holder, roles
  and validity, so someone without vqual checks the signatures with securesystemslib alone;
- ``verification.json``: what ``vqual verify`` answered at export time;
- ``INDEX.json``: the SHA-256 of every file above, so a missing or changed file is seen.

The folder is built beside its destination and renamed into place: an interrupted export
leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]  # no __all__

from qualification.errors import BadInputError
from qualification.evidence.canonical import canonical_bytes
from qualification.signing.trust import TrustStore

__all__ = ["INDEX", "KEYS_FILE", "securesystemslib_keys", "write_inspector_folder"]

INDEX = "INDEX.json"
KEYS_FILE = "trust/keys.securesystemslib.json"
_VIEWS = "views"


def securesystemslib_keys(trust: TrustStore) -> dict[str, Any]:
    """The trust store's keys in securesystemslib's format (``SSlibKey.to_dict``).

    ``keyid`` is the id the record envelopes carry (SHA-256 of the raw public key), which
    securesystemslib's DSSE verification matches; ``sslib_default_keyid`` is the id
    securesystemslib computes for the same key, for tools that look keys up by theirs.
    """
    keys = []
    for keyid, key in sorted(trust.keys.items()):
        public = key.public_key()
        keys.append(
            {
                "keyid": keyid,
                "sslib_default_keyid": SSlibKey.from_crypto(public).keyid,
                "key": SSlibKey.from_crypto(public, keyid=keyid).to_dict(),
                **{k: v for k, v in key.to_yaml_obj().items() if k not in ("keyid", "public_key")},
            }
        )
    return {"schema": "vqual.inspector-keys/v1", "trust_digest": trust.digest, "keys": keys}


def _copy_run(run: Path, target: Path) -> None:
    def skip(folder: str, names: list[str]) -> list[str]:
        return [_VIEWS] if Path(folder) == run and _VIEWS in names else []

    shutil.copytree(run, target, ignore=skip, symlinks=True)


def _index(root: Path) -> bytes:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return canonical_bytes({"files": files, "schema": "vqual.inspector-index/v1"})


def write_inspector_folder(
    change_dir: Path,
    output: Path,
    *,
    trust: TrustStore,
    history_dir: Path | None,
    extra_trust_files: Mapping[str, bytes],
    verification: Mapping[str, Any],
) -> list[str]:
    """Write the inspector folder for the (already verified) change at ``change_dir``.

    Returns the folder's files, relative to ``output``.

    Raises:
        BadInputError: ``output`` exists, its parent is missing or not writable, or an extra
            file name leaves ``trust/``; nothing is left behind.
    """
    output = Path(output)
    if output.exists():
        raise BadInputError(f"{output} exists; an inspector folder is written new", where="--output")
    if not output.parent.is_dir():
        raise BadInputError(f"{output.parent} is not a directory", where="--output")
    for name in extra_trust_files:
        if "/" in name or name.startswith(".") or name in ("", INDEX, "trust", "evidence"):
            raise BadInputError(f"trust file name {name!r} must be a plain file name")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    except OSError as exc:
        raise BadInputError(f"cannot write in {output.parent}: {exc.strerror}", where="--output") from None
    try:
        runs = sorted(p for p in change_dir.iterdir() if p.is_dir() and (p / "records.jsonl").exists())
        for run in runs:
            _copy_run(run, staging / "evidence" / change_dir.name / run.name)
        trust_dir = staging / "trust"
        trust_dir.mkdir()
        if trust.raw is not None:
            (trust_dir / "trust.yaml").write_bytes(trust.raw)
        if history_dir is not None and history_dir.is_dir():
            shutil.copytree(history_dir, trust_dir / history_dir.name)
        for name, data in sorted(extra_trust_files.items()):
            (staging / name).write_bytes(data)
        (staging / KEYS_FILE).write_bytes(
            json.dumps(securesystemslib_keys(trust), indent=2, sort_keys=True).encode() + b"\n"
        )
        (staging / "verification.json").write_bytes(
            json.dumps(dict(verification), indent=2, sort_keys=True).encode() + b"\n"
        )
        (staging / INDEX).write_bytes(_index(staging) + b"\n")
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; an inspector's copy is meant to be read
        os.rename(staging, output)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BadInputError(f"cannot write {output}: {exc.strerror}", where="--output") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
