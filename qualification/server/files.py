"""Which files a bundle in transit may hold, and packing them into a tar and out again.

A pushed or pulled bundle travels as an uncompressed tar of ``records.jsonl``,
``manifest.json`` and the sealed files (:func:`qualification.evidence.bundle.is_sealed_path`);
nothing else. Every member name is checked against that grammar before anything is written,
only regular files are taken, and each target path is resolved and checked to lie inside the
directory it is written to: no URL or archive reaches a file outside the store.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path

from qualification.errors import BadInputError
from qualification.evidence.bundle import MANIFEST, RECORDS, is_sealed_path

#: A run id or change id in a URL: the record formats' safe-name grammar
#: (qualification.evidence.records._SAFE_NAME), checked again here because a URL is input.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: A seal: a SHA-256 in lower-case hex.
_SEAL = re.compile(r"[0-9a-f]{64}")
#: Most members a bundle may have; a run with more raw files than this is not a bundle.
MAX_MEMBERS = 100_000


def valid_name(text: str, what: str) -> str:
    """``text`` if it is a safe run or change id (no dots only, no slashes), else refused."""
    if not _NAME.fullmatch(text) or set(text) <= {"."}:
        raise BadInputError(f"{what} {text[:80]!r} is not a valid name")
    return text


def is_seal(text: str) -> bool:
    return bool(_SEAL.fullmatch(text))


def is_bundle_member(name: str) -> bool:
    """Whether ``name`` (POSIX, relative) may travel in a bundle."""
    return name in (RECORDS, MANIFEST) or is_sealed_path(name)


def bundle_members(bundle: Path) -> list[str]:
    """The files of ``bundle`` that travel (sorted); rendered views and others stay home."""
    out = []
    for path in bundle.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(bundle).as_posix()
            if is_bundle_member(rel):
                out.append(rel)
    if RECORDS not in out:
        raise BadInputError(f"{bundle} has no {RECORDS}: not an evidence bundle")
    return sorted(out)


def pack(bundle: Path) -> bytes:
    """The tar of ``bundle``'s travelling files, with fixed owners and times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in bundle_members(bundle):
            data = (bundle / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack(data: bytes, target: Path, *, max_bytes: int) -> list[str]:
    """Write the members of the tar ``data`` under ``target`` (which must not exist yet).

    Raises:
        BadInputError: not a tar, a member that is not a regular file or whose name is not a
            bundle file, a duplicate, too many members or bytes, or no ``records.jsonl``.
    """
    target.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            names = _extract(tar, target.resolve(), max_bytes)
    except tarfile.TarError:
        raise BadInputError("the body is not an uncompressed tar of a bundle") from None
    if RECORDS not in names:
        raise BadInputError(f"the bundle has no {RECORDS}")
    return names


def _extract(tar: tarfile.TarFile, root: Path, max_bytes: int) -> list[str]:
    names: list[str] = []
    total = 0
    for info in tar:
        name = info.name
        if not info.isreg():
            raise BadInputError(f"member {name[:120]!r} is not a regular file")
        if not is_bundle_member(name) or name in names:
            raise BadInputError(f"member {name[:120]!r} is not a file of a bundle")
        total += info.size
        if total > max_bytes or len(names) >= MAX_MEMBERS:
            raise BadInputError("the bundle is larger than this server accepts")
        dest = (root / name).resolve()
        if not dest.is_relative_to(root):
            raise BadInputError(f"member {name[:120]!r} leaves the bundle directory")
        source = tar.extractfile(info)
        assert source is not None  # a regular file always has content
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(source.read())
        names.append(name)
    return names
