"""What a run needs from review before and while it executes: approval and deviations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qualification.review.approval import ProtocolApproval, find_approvals, require_approval
from qualification.review.deviations import DeviationState, deviation_state
from qualification.review.signed import load_trust, load_trust_versioned
from qualification.state import trust_path


def preflight_review(
    state_dir: Path, spec_path: Path, change_id: str, *, approval_required: bool
) -> ProtocolApproval | None:
    """Refuse a run before anything executes: a malformed ``deviations.yaml``, or (when the
    site requires it) a protocol without a valid approval.

    Raises:
        BadInputError: either of the above.
        TrustError: no trust store to judge approvals and waivers with.
    """
    trust = load_trust(state_dir)
    deviation_state(state_dir, change_id, trust)
    if approval_required:
        return require_approval(state_dir, spec_path, trust)
    return None


def run_review_context(
    state_dir: Path, change_id: str, spec_digest: str, data_files: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, DeviationState | None, int | None]:
    """The approval ``run.start`` cites (or None), the change's deviations with waivers, and
    the signed version of the trust store they were judged with (None: not signed).

    Without a trust store nothing can be judged, so nothing is cited or waived.
    """
    if not trust_path(state_dir).exists():
        return None, None, None
    trust, version = load_trust_versioned(state_dir)
    files = [{"name": str(d["name"]), "digest": str(d["digest"])} for d in data_files]
    valid, _ = find_approvals(state_dir, spec_digest, files, trust)
    citation = valid[-1].citation() if valid else None
    return citation, deviation_state(state_dir, change_id, trust), version
