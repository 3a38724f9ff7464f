"""``vqual export --inspector``: verify a change, then write the folder an inspector receives."""

from __future__ import annotations

from pathlib import Path

from qualification.errors import BadInputError, EvidenceIncompleteError, EvidenceInvalidError
from qualification.evidence.change import is_change_dir
from qualification.execution.verifying import verify_command
from qualification.review.inspector import write_inspector_folder
from qualification.review.signed import load_trust
from qualification.review.trust_history import HISTORY_DIR

__all__ = ["export_for_inspector"]


def export_for_inspector(change: Path, output: Path, state_dir: Path) -> list[str]:
    """Verify the change at ``change`` and write its inspector folder at ``output``.

    Returns the folder's files (relative paths).

    Raises:
        BadInputError: ``change`` is not a change directory, or ``output`` cannot be written.
        EvidenceInvalidError: the change does not verify (nothing is written).
        EvidenceIncompleteError: a run of the change did not finish (nothing is written).
    """
    if not is_change_dir(change):
        raise BadInputError(
            f"{change} is not a change directory (evidence/<change_id> holding runs)"
        )
    text, payload, code = verify_command(change, state_dir)
    if code == EvidenceIncompleteError.exit_code:
        raise EvidenceIncompleteError(f"{change}: a run did not finish; not exported")
    if code != 0:
        first = (payload.get("problems") or ["invalid"])[0]
        raise EvidenceInvalidError(f"{change} does not verify, not exported: {first}")
    return write_inspector_folder(
        change,
        output,
        trust=load_trust(state_dir),
        history_dir=state_dir / HISTORY_DIR,
        extra_trust_files={},
        verification={**payload, "text": text},
    )
