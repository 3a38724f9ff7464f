"""``vqual export --inspector``: verify a change, then write the folder an inspector receives."""

from __future__ import annotations

from pathlib import Path

from qualification.errors import BadInputError, EvidenceIncompleteError, EvidenceInvalidError
from qualification.evidence.change import is_change_dir
from qualification.execution.verifying import verify_command
from qualification.review.inspector import write_inspector_folder
from qualification.review.pinned import choose_trust
from qualification.review.trust_history import HISTORY_DIR

__all__ = ["export_for_inspector"]


def export_for_inspector(
    change: Path, output: Path, state_dir: Path, *, trust_root: Path | None = None,
    legacy: bool = False,
) -> tuple[list[str], str]:
    """Verify the change at ``change`` and write its inspector folder at ``output``.

    The trust is chosen as ``vqual verify`` chooses it (the pinned root, or legacy trust
    when asked for); the pin file goes into the folder as ``trust/trust-root.yaml``, so the
    inspector verifies against the root the export was judged with (and should compare it
    with the root they received separately).

    Returns the folder's files (relative paths) and the line naming the trust root used.

    Raises:
        BadInputError: ``change`` is not a change directory, or ``output`` cannot be written.
        EvidenceInvalidError: the change does not verify (nothing is written).
        EvidenceIncompleteError: a run of the change did not finish (nothing is written).
    """
    if not is_change_dir(change):
        raise BadInputError(
            f"{change} is not a change directory (evidence/<change_id> holding runs)"
        )
    choice = choose_trust(state_dir, trust_root=trust_root, legacy=legacy)
    text, payload, code = verify_command(change, state_dir, trust_root=trust_root, legacy=legacy)
    if code == EvidenceIncompleteError.exit_code:
        raise EvidenceIncompleteError(f"{change}: a run did not finish; not exported")
    if code != 0:
        first = (payload.get("problems") or ["invalid"])[0]
        raise EvidenceInvalidError(f"{change} does not verify, not exported: {first}")
    files = write_inspector_folder(
        change,
        output,
        trust=choice.store,
        history_dir=state_dir / HISTORY_DIR,
        extra_trust_files=(
            {"trust-root.yaml": choice.root.path.read_bytes()} if choice.root is not None else {}
        ),
        verification={**payload, "text": text},
    )
    return files, choice.describe()
