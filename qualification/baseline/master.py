"""A baseline read back from a bundle that verifies: its fingerprints, and the Master-VM
reference a clone run relies on.

Everything a clone run relies on is checked here before anything runs (:func:`load_master`):
the master bundle must verify, its run must have passed, it must carry an ``approved``
signature where the spec requires one, and it must hold the master's fingerprint. The
reference to it (seal digest, fingerprint digest) goes into the clone run's ``run.start``
(``clone`` block); :mod:`qualification.execution.planning` asks for it when it plans a run.

Exit codes of the refusals: a master bundle that does not verify (invalid or incomplete) is
evidence that cannot be trusted, exit 1; a master that is not approved where approval is
required, whose run did not pass, or that has no usable fingerprint is bad input, exit 2.
Docs: docs/clones.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qualification.checks.fingerprint_model import (
    FINGERPRINT_KIND,
    Fingerprint,
    fingerprints_from_records,
)
from qualification.errors import BadInputError, EvidenceInvalidError
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import INCOMPLETE, VALID, verify_bundle
from qualification.review.pinned import judged_trust
from qualification.signing import TrustStore
from qualification.spec.plan import MasterBaseline
from qualification.state import resolve_state_dir
from qualification.verdict import Verdict


def fingerprints_of(bundle: Path, *, state_dir: Path | None = None) -> dict[str, Fingerprint]:
    """The fingerprints of a sealed bundle that verifies, by subject.

    Args:
        bundle: the run directory ``evidence/<change>/<run>``.
        state_dir: the state directory whose trust store judges the bundle (default: the
            resolved state directory, as every command).

    Raises:
        EvidenceInvalidError: the bundle does not verify (or a fingerprint record is bad),
            or the pinned root does not vouch for the trust store.
        EvidenceIncompleteError: the run did not finish.
        BadInputError: no trust store, or no trust root pinned (and no legacy trust).
    """
    trust = judged_trust(resolve_state_dir(state_dir)).store  # as `vqual verify` judges
    verify_bundle(Path(bundle), trust).raise_for_status()
    read = read_bundle(bundle)
    return fingerprints_from_records(
        [(r.line, r.data) for r in read.of_kind(FINGERPRINT_KIND)],
        where=f"{bundle}/records.jsonl",
    )


def _first(problems: Sequence[str]) -> str:
    if not problems:
        return "no reason given"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def approval_of(signatures: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The approval that stands on a verified bundle, and if none, why.

    The latest ``approved`` or ``rejected`` signature decides: a rejection after an
    approval withdraws it. Only signatures of a bundle that verified count (the verifier
    already checked the signer's role and separation of duties).

    Returns:
        ({name, keyid, identity, time, seal} or None, reason when None).
    """
    decisive = [s for s in signatures if s.get("meaning") in ("approved", "rejected")]
    if not decisive:
        return None, "it carries no 'approved' signature (vqual sign BUNDLE --meaning approved)"
    last = max(decisive, key=lambda s: int(s.get("seq", 0)))
    if last.get("meaning") == "rejected":
        return None, f"it was rejected by {last.get('name')} at {last.get('time')}"
    return (
        {
            "name": last.get("name"),
            "keyid": last.get("keyid"),
            "identity": last.get("identity"),
            "time": last.get("time"),
            "seal": last.get("seal"),
        },
        "",
    )


def select_fingerprint(
    fingerprints: Mapping[str, Fingerprint], subject: str | None, *, where: str
) -> Fingerprint:
    """The master's fingerprint: ``subject``'s, else the bundle's only VM fingerprint.

    Raises:
        BadInputError: none, not the subject asked for, or several VMs and no subject.
    """
    if not fingerprints:
        raise BadInputError(
            "the master bundle has no fingerprint record: qualify the master with a "
            "fingerprint test (specs/master-vm.yaml) first",
            where=where,
        )
    if subject is not None:
        found = fingerprints.get(subject)
        if found is None:
            raise BadInputError(
                f"the master bundle has no fingerprint of {subject!r} "
                f"(it has: {', '.join(sorted(fingerprints))})",
                where=where,
            )
        return found
    vms = sorted(name for name, fp in fingerprints.items() if fp.kind == "vm")
    if len(vms) == 1:
        return fingerprints[vms[0]]
    if not vms:
        raise BadInputError(
            f"the master bundle has no VM fingerprint (it has: {', '.join(sorted(fingerprints))})",
            where=where,
        )
    raise BadInputError(
        f"the master bundle has fingerprints of several VMs ({', '.join(vms)}): "
        "name one with clone.master.subject in the spec or --master-subject",
        where=where,
    )


def load_master(
    bundle: Path,
    *,
    state_dir: Path,
    require_approval: bool,
    subject: str | None = None,
    trust: TrustStore | None = None,
) -> MasterBaseline:
    """Check the master bundle a clone run relies on, and return its reference.

    Args:
        bundle: the master run's bundle directory.
        state_dir: the state directory whose trust store judges the bundle.
        require_approval: the bundle must carry a standing ``approved`` signature.
        subject: the master's inventory name in the bundle; None: its only VM fingerprint.
        trust: the trust store already loaded for the run; None: ``state_dir``'s is loaded.

    Raises:
        BadInputError: not a bundle directory; not approved where required; its run did not
            pass; no usable fingerprint (exit 2).
        EvidenceInvalidError: the bundle does not verify or is incomplete (exit 1).
        TrustError: no usable trust store.
    """
    where = f"master bundle {bundle}"
    if not (bundle / "records.jsonl").is_file():
        raise BadInputError("not an evidence bundle (no records.jsonl)", where=where)
    result = verify_bundle(bundle, trust if trust is not None
                           else judged_trust(state_dir).store)
    if result.status == INCOMPLETE:
        raise EvidenceInvalidError(
            "the master run did not finish (no run.end): it cannot serve as a master", where=where
        )
    if result.status != VALID:
        raise EvidenceInvalidError(f"does not verify: {_first(result.problems)}", where=where)
    if result.verdict != Verdict.PASS:
        raise BadInputError(
            f"the master run's verdict is {result.verdict!r}: only a master that passed "
            "can be cloned",
            where=where,
        )
    approval, why = approval_of(result.signatures)
    if require_approval and approval is None:
        raise BadInputError(
            f"is not approved, and the spec requires an approved master: {why}", where=where
        )
    read = read_bundle(bundle)
    fingerprints = fingerprints_from_records(
        [(r.line, r.data) for r in read.of_kind(FINGERPRINT_KIND)],
        where=f"{bundle}/records.jsonl",
    )
    chosen = select_fingerprint(fingerprints, subject, where=where)
    assert result.seal_digest is not None  # a valid bundle is sealed
    return MasterBaseline(
        bundle=str(bundle.resolve()),
        seal=result.seal_digest,
        change_id=str(result.change_id),
        run_id=str(result.run_id),
        subject=chosen.subject,
        fingerprint_digest=chosen.digest(),
        approval=approval,
    )
