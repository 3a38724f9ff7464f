"""Protocol pre-approval: an approver signs a spec together with its data files' digests.

Approvals live in the state directory as ``approvals/<spec sha256>/<time>-<keyid16>.json``, one
DSSE envelope each (payload type :data:`APPROVAL_TYPE`). An approval covers exactly the spec
bytes (its digest) and the data files it references (name and digest): one changed byte in
any of them and the approval no longer applies. With ``require_protocol_approval: true`` in
``config.yaml``, ``vqual qualify`` refuses a protocol without one before anything runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, EvidenceInvalidError, TrustError, VqualError
from qualification.evidence.records import utc_now
from qualification.evidence.trusted_time import check_file, stamp_file
from qualification.evidence.verify import SignedDocument
from qualification.review.signed import (
    check_signer,
    compact_time,
    open_document,
    sign_document,
    signer_fields,
    write_new,
)
from qualification.signing import Signer, TrustStore
from qualification.spec.expected import load_expected_values
from qualification.spec.loader import load_spec
from qualification.spec.model import Spec

APPROVAL_TYPE = "application/vnd.vqual.approval+json"
APPROVALS_DIR = "approvals"
APPROVAL_KIND = "protocol.approval"


@dataclass(frozen=True)
class ProtocolApproval:
    """A valid approval of one spec and its data files, as ``run.start`` cites it."""

    file: str  # relative to the state directory
    digest: str  # SHA-256 of the stored envelope
    spec_digest: str
    name: str
    keyid: str
    time: str
    comment: str | None

    def citation(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "digest": self.digest,
            "spec_digest": self.spec_digest,
            "name": self.name,
            "keyid": self.keyid,
            "time": self.time,
            "comment": self.comment,
        }


def _covered(spec: Spec) -> tuple[dict[str, Any], list[dict[str, str]]]:
    spec_part = {
        "name": spec.name,
        "version": spec.version,
        "file": Path(spec.path).name,
        "digest": spec.digest,
    }
    files = sorted(
        ({"name": d.name, "digest": d.digest} for d in spec.data_files), key=lambda d: d["name"]
    )
    return spec_part, files


def approve_protocol(
    spec_path: Path, signer: Signer, trust: TrustStore, state_dir: Path, comment: str | None = None
) -> ProtocolApproval:
    """Sign ``spec_path`` and the digests of its data files as ``approved``; store it.

    Raises:
        SpecError: the spec does not load (an invalid protocol is not approved).
        TrustError: the key is untrusted, not valid now, or not an approver.
    """
    spec = load_spec(spec_path)
    key = check_signer(trust, signer.keyid, "approver")
    _not_the_capturer(spec, key.identity, key.name)
    spec_part, files = _covered(spec)
    now = utc_now()
    payload = {
        "v": 1,
        "kind": APPROVAL_KIND,
        "meaning": "approved",
        "spec": spec_part,
        "data_files": files,
        **signer_fields(key, now, comment),
    }
    line = sign_document(signer, APPROVAL_TYPE, payload)
    rel = f"{APPROVALS_DIR}/{spec.digest}/{compact_time(now)}-{key.keyid[:16]}.json"
    write_new(state_dir / rel, line + b"\n")
    stamp_file(trust, state_dir / rel)  # trusted time: the approval cannot be backdated
    return ProtocolApproval(
        rel, hashlib.sha256(line).hexdigest(), spec.digest, key.name, key.keyid, now, comment
    )


def _not_the_capturer(spec: Spec, identity: str, name: str) -> None:
    """Separation of duties: whoever captured the spec's draft expected values (``vqual
    baseline capture``) does not approve them.

    Raises:
        TrustError: the approver's identity or name is the capturer's.
    """
    found = spec.expected_file()
    if found is None:
        return
    values = load_expected_values(found)
    if values.draft and values.captured_by in (identity, name):
        raise TrustError(
            f"{values.captured_by} captured {values.describe()}; another approver approves "
            "the protocol with them (separation of duties)",
            where=str(found.path),
        )


def _judge(doc: SignedDocument, spec_digest: str, files: list[dict[str, str]], where: str) -> None:
    payload = doc.payload
    if payload.get("kind") != APPROVAL_KIND or payload.get("meaning") != "approved":
        raise EvidenceInvalidError("not a protocol approval", where=where)
    signed_spec = payload.get("spec")
    if not isinstance(signed_spec, dict) or signed_spec.get("digest") != spec_digest:
        raise EvidenceInvalidError("approves other spec bytes", where=where)
    if payload.get("data_files") != files:
        raise EvidenceInvalidError(
            "the spec's data files differ from those approved (name or digest)", where=where
        )


def find_approvals(
    state_dir: Path,
    spec_digest: str,
    data_files: list[dict[str, str]],
    trust: TrustStore,
) -> tuple[list[ProtocolApproval], list[str]]:
    """Valid approvals of these spec bytes and data files (oldest first), and why each other
    candidate does not count.

    Args:
        spec_digest: SHA-256 of the spec file.
        data_files: ``{name, digest}`` of every data file the spec references.
    """
    files = sorted(
        ({"name": str(d["name"]), "digest": str(d["digest"])} for d in data_files),
        key=lambda d: d["name"],
    )
    folder = state_dir / APPROVALS_DIR / spec_digest
    valid: list[ProtocolApproval] = []
    refused: list[str] = []
    if not folder.is_dir():
        return valid, refused
    for path in sorted(folder.glob("*.json")):
        rel = path.relative_to(state_dir).as_posix()
        try:
            doc = open_document(path.read_bytes(), APPROVAL_TYPE, trust, "approver", where=rel)
            _judge(doc, spec_digest, files, rel)
            check_file(trust, path, doc.payload["time"])
        except (VqualError, OSError) as exc:
            refused.append(exc.one_line() if isinstance(exc, VqualError) else f"{rel}: {exc}")
            continue
        comment = doc.payload.get("comment")
        valid.append(
            ProtocolApproval(
                rel,
                doc.digest,
                spec_digest,
                doc.key.name,
                doc.keyid,
                str(doc.payload["time"]),
                comment if isinstance(comment, str) else None,
            )
        )
    valid.sort(key=lambda a: a.time)
    return valid, refused


def require_approval(state_dir: Path, spec_path: Path, trust: TrustStore) -> ProtocolApproval:
    """The approval a run cites; refuses a protocol without a valid one.

    Raises:
        BadInputError: no valid approval of these exact spec and data file bytes.
    """
    approval = approval_for(state_dir, load_spec(spec_path), trust, required=True)
    assert approval is not None  # required: refused above otherwise
    return approval


def approval_for(
    state_dir: Path, spec: Spec, trust: TrustStore, *, required: bool
) -> ProtocolApproval | None:
    """The latest valid approval of the loaded ``spec`` and its data files, or None.

    Raises:
        BadInputError: ``required`` and there is no valid approval of these exact spec and
            data file bytes.
    """
    _, files = _covered(spec)
    valid, refused = find_approvals(state_dir, spec.digest, files, trust)
    if valid:
        return valid[-1]
    if not required:
        return None
    why = f" ({'; '.join(refused[:3])})" if refused else ""
    raise BadInputError(
        f"protocol {spec.name} {spec.version} (sha256 {spec.digest[:16]}) has no valid approval "
        f"of these exact spec and data file bytes{why}; an approver runs "
        f"`vqual sign {spec.path} --meaning approved`",
        where=str(spec.path),
    )
