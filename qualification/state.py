"""The state directory: everything that outlives one run (trust store, approvals, leases).

``--state-dir``, else ``$VQUAL_STATE_DIR``, else ``$XDG_DATA_HOME/vqual`` (default
``~/.local/share/vqual``). See docs/formats.md.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

TRUST_FILE = "trust.yaml"


def resolve_state_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("VQUAL_STATE_DIR")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "vqual"


def trust_path(state_dir: Path) -> Path:
    return state_dir / TRUST_FILE


def trust_digest(state_dir: Path) -> str | None:
    """SHA-256 of the trust store's bytes, or None when there is none yet."""
    try:
        return hashlib.sha256(trust_path(state_dir).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
