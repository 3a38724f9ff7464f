"""What a run needs from review before it executes: the protocol approval and the deviations."""

from __future__ import annotations

from pathlib import Path

from qualification.errors import BadInputError
from qualification.review.approval import ProtocolApproval, approval_for
from qualification.review.deviations import DeviationState, deviation_state
from qualification.signing import TrustStore
from qualification.spec.expected import ExpectedValues, load_expected_values
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
    draft = draft_expected_values(spec)
    if draft is None:
        return approval_for(state_dir, spec, trust, required=approval_required), deviations
    # a captured baseline is used only as approved with the spec, whatever the site requires
    approval = approval_for(state_dir, spec, trust, required=False)
    if approval is None:
        raise BadInputError(
            f"{draft.describe()} is a draft: a run uses it only once the protocol is approved "
            f"with it; an approver other than {draft.captured_by or 'whoever captured it'} runs "
            f"`vqual sign {spec.path} --meaning approved`",
            where=str(spec.path),
        )
    return approval, deviations


def draft_expected_values(spec: Spec) -> ExpectedValues | None:
    """The spec's expected-values file when it is a draft (captured, not yet approved)."""
    found = spec.expected_file()
    if found is None:
        return None
    values = load_expected_values(found)
    return values if values.draft else None
