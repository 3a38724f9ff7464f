"""``vqual sign BUNDLE``: a Part 11 e-signature on a sealed run.

The ``signature`` record carries the signer's printed name and roles from the trust store,
the meaning, a comment and the seal digest it signs (so it cannot be moved to another bundle);
its record time is the UTC signing time. Who may sign what: a reviewer ``reviewed``, an approver
``approved`` or ``rejected``; whoever initiated or executed the run may not approve it; only a
bundle that verifies valid may be approved or reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qualification.errors import (
    BadInputError,
    EvidenceIncompleteError,
    EvidenceInvalidError,
    TrustError,
)
from qualification.evidence.bundle import append_signature
from qualification.evidence.reader import read_bundle
from qualification.evidence.records import MEANING_ROLE, RUN_KINDS
from qualification.evidence.verify import INCOMPLETE, VALID, verify_bundle
from qualification.review.documents import check_signer
from qualification.signing import Signer, TrustStore

#: Meanings a person signs with ``vqual sign``; ``authored`` is the executor's own.
SIGN_MEANINGS = ("reviewed", "approved", "rejected")


@dataclass(frozen=True)
class BundleSignature:
    """What :func:`sign_bundle` appended."""

    bundle: Path
    seq: int
    meaning: str
    name: str
    keyid: str
    seal: str


def sign_bundle(
    bundle: Path, signer: Signer, trust: TrustStore, meaning: str, comment: str | None = None
) -> BundleSignature:
    """Append a ``signature`` record to ``bundle`` after every check the signer must pass.

    Raises:
        BadInputError: unknown meaning, or ``bundle`` is not a bundle directory.
        TrustError: the key is untrusted, expired, revoked or lacks the meaning's role, or the
            signer initiated or executed the run and asks to approve it.
        EvidenceInvalidError: the bundle does not verify, which includes a waived result not
            backed by an approver's valid waiver (approved and reviewed need a valid bundle;
            rejected needs a sealed one).
        EvidenceIncompleteError: the run never finished.
    """
    if meaning not in SIGN_MEANINGS:
        raise BadInputError(f"meaning {meaning!r} is not one of {', '.join(SIGN_MEANINGS)}")
    if not (bundle / "records.jsonl").is_file():
        raise BadInputError(f"{bundle} is not an evidence bundle (no records.jsonl)")
    key = check_signer(trust, signer.keyid, MEANING_ROLE[meaning])
    result = verify_bundle(bundle, trust)
    if result.status == INCOMPLETE:
        raise EvidenceIncompleteError(
            f"cannot sign {meaning}: the run did not finish (no run.end)", where=str(bundle)
        )
    if result.status != VALID and meaning != "rejected":
        first = result.problems[0] if result.problems else "invalid"
        raise EvidenceInvalidError(
            f"cannot sign {meaning}: the bundle does not verify: {first}", where=str(bundle)
        )
    if meaning == "approved":
        _check_not_own_run(bundle, key.keyid, key.identity, key.name, trust)
    seq = append_signature(
        bundle,
        signer,
        {"meaning": meaning, "name": key.name, "roles": list(key.roles), "comment": comment},
        tsa=trust.tsa,  # the signature's time, vouched for by the store's TSA
    )
    seal = result.seal_digest or read_bundle(bundle).seal_digest or ""
    return BundleSignature(bundle, seq, meaning, key.name, key.keyid, seal)


def _check_not_own_run(
    bundle: Path, keyid: str, identity: str, name: str, trust: TrustStore
) -> None:
    """Separation of duties: neither the executor nor the initiator approves a run."""
    records = read_bundle(bundle).records
    run = [r for r in records if r.kind in RUN_KINDS]
    actors = {r.actor for r in run}
    if keyid in actors:
        raise TrustError(f"{name} executed this run (key {keyid[:16]}) and may not approve it")
    executors = {k.identity for k in (trust.get(a) for a in actors) if k is not None}
    initiators = {r.initiator for r in run}
    if identity in executors:
        raise TrustError(f"{name} ({identity}) executed this run and may not approve it")
    if identity in initiators or name in initiators:
        raise TrustError(f"{name} ({identity}) initiated this run and may not approve it")
