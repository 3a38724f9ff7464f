"""Standard result formats of a verified bundle: SARIF 2.1.0, OHDF, an in-toto attestation.

Each format is a pure function of an :class:`ExportSource` (``to_sarif``, ``to_ohdf``,
``to_statement``/``to_envelope``); :func:`export_bundle` verifies and reads the bundle and
renders one format as bytes; :func:`write_atomic` writes them so that a failed write leaves
nothing behind. docs/exports.md has the mappings.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, TrustError
from qualification.evidence.bundle import VIEWS
from qualification.reports.exports.intoto import to_envelope, to_statement
from qualification.reports.exports.ohdf import to_ohdf
from qualification.reports.exports.sarif import to_sarif
from qualification.reports.exports.source import ExportSource, load_source, verdict_counts
from qualification.signing import Signer, TrustStore
from qualification.timeutil import utc_now

#: The formats, in the order ``--help`` lists them.
FORMATS = ("sarif", "ohdf", "in-toto")

#: Formats whose output is signed (they need the executor's key).
SIGNED = frozenset({"in-toto"})

__all__ = [
    "FORMATS",
    "SIGNED",
    "ExportSource",
    "check_output",
    "check_signer",
    "export_bundle",
    "load_source",
    "render",
    "to_envelope",
    "to_ohdf",
    "to_sarif",
    "to_statement",
    "verdict_counts",
    "write_atomic",
]


def render(fmt: str, source: ExportSource, signer: Signer | None = None) -> bytes:
    """``source`` in format ``fmt`` as UTF-8 JSON with a final newline.

    Raises:
        BadInputError: an unknown format, or a signed format without a signer.
    """
    if fmt not in FORMATS:
        raise BadInputError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    doc: dict[str, Any]
    if fmt == "sarif":
        doc = to_sarif(source)
    elif fmt == "ohdf":
        doc = to_ohdf(source)
    else:
        if signer is None:
            raise BadInputError("the in-toto export is signed: it needs the executor's key")
        doc = to_envelope(source, signer)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def check_signer(trust: TrustStore, keyid: str) -> None:
    """Refuse a key that may not sign for the executor now (trust store validity and role).

    Raises:
        TrustError: unknown, expired or revoked key, or one without the executor role.
    """
    ok, reason = trust.key_status_at(keyid, utc_now())
    if ok and not trust.has_role(keyid, "executor"):
        ok, reason = False, "it does not hold the executor role in the trust store"
    if not ok:
        raise TrustError(f"the key {keyid[:16]} cannot sign the attestation: {reason}")


def export_bundle(
    bundle: Path,
    trust: TrustStore,
    fmt: str,
    signer_for: Callable[[], Signer] | None = None,
) -> bytes:
    """Verify ``bundle`` against ``trust`` and render it in format ``fmt``.

    ``signer_for`` opens the executor's key; it is called only for a signed format, after
    the bundle verified, so a bad bundle is refused before anyone is asked for a passphrase.

    Raises:
        BadInputError: unknown format, or no bundle directory at ``bundle`` (exit 2).
        EvidenceInvalidError: the bundle does not verify (exit 1).
        EvidenceIncompleteError: the run did not finish (exit 3).
        TrustError: the key may not sign (exit 2).
    """
    if fmt not in FORMATS:
        raise BadInputError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    if not bundle.is_dir():
        raise BadInputError(f"{bundle} is not an evidence bundle directory")
    source = load_source(bundle, trust)
    signer = None
    if fmt in SIGNED:
        if signer_for is None:
            raise BadInputError("the in-toto export is signed: it needs the executor's key")
        signer = signer_for()
        check_signer(trust, signer.keyid)
    return render(fmt, source, signer)


def check_output(bundle: Path, output: Path) -> None:
    """Refuse an output inside the bundle but outside ``views/``: any other file there makes
    the bundle invalid (docs/formats.md).

    Raises:
        BadInputError: ``output`` would land in the bundle's sealed area.
    """
    root, target = bundle.resolve(), output.resolve()
    if root in target.parents and (root / VIEWS) not in target.parents:
        raise BadInputError(
            f"{output} is inside the bundle, which any new file there makes invalid; "
            f"write it elsewhere or under {VIEWS}/",
            where="--output",
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in its directory and a rename.

    Raises:
        BadInputError: the directory is missing or not writable, or ``path`` is a directory;
            nothing is left behind.
    """
    target = Path(path)
    if target.is_dir():
        raise BadInputError(f"{target} is a directory", where="--output")
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise BadInputError(f"cannot write in {folder}: {exc.strerror}", where="--output") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"cannot write {target}: {exc.strerror}", where="--output") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
