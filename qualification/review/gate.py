"""What a run needs from review before it executes: the protocol approval and the deviations."""

from __future__ import annotations

from pathlib import Path

from qualification.review.approval import ProtocolApproval, approval_for
from qualification.review.deviations import DeviationState, deviation_state
from qualification.signing import TrustStore
from qualification.spec.model import Spec


def review_state(
    state_dir: Path, spec: Spec, change_id: str, trust: TrustStore, *, approval_required: bool
) -> tuple[ProtocolApproval | None, DeviationState]:
    """The approval ``run.start`` cites (or None) and the change's deviations with their
    waivers, judged with ``trust``; refuses a run before anything executes.

    Raises:
        BadInputError: a malformed ``deviations.yaml``, or (``approval_required``) a protocol
            without a valid approval of these exact spec and data file bytes.
    """
    deviations = deviation_state(state_dir, change_id, trust)
    return approval_for(state_dir, spec, trust, required=approval_required), deviations
