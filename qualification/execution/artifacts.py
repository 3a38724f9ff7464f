"""The sealed bundle returned with a job's artifacts (AAP, ``ansible-runner``; docs/aap.md).

On an execution node the job's private data directory, with an evidence directory inside it,
is deleted after the job (``ansible-runner worker --delete``); only the artifacts directory
travels back to the controller (``ansible-runner process``). A copy of the sealed bundle under
it comes back with the job and verifies there like the original: bundles are self-contained.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from qualification.errors import BadInputError

#: Where in the artifacts directory the bundles go: ``vqual-evidence/<change_id>/<run_id>``.
ARTIFACTS_SUBDIR = "vqual-evidence"


def copy_to_artifacts(bundle: Path, artifacts_dir: Path) -> Path:
    """Copy a sealed bundle to ``<artifacts_dir>/vqual-evidence/<change_id>/<run_id>``.

    Returns:
        The copy's path relative to ``artifacts_dir``.

    Raises:
        BadInputError: the artifacts directory does not exist or the copy exists already.
    """
    if not artifacts_dir.is_dir():
        raise BadInputError(f"artifacts directory {artifacts_dir} does not exist")
    relative = Path(ARTIFACTS_SUBDIR) / bundle.parent.name / bundle.name
    destination = artifacts_dir / relative
    if destination.exists():
        raise BadInputError(f"{destination} exists already")
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle, destination)
    return relative
