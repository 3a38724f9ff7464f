"""The audit log in the state directory: events outside any bundle (failed verifications)."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

from qualification.timeutil import utc_now_text

AUDIT_FILE = "audit.log"


def record_failed_verification(
    state_dir: Path, bundle: Path, status: str, problems: list[str]
) -> Path:
    """Append one JSON line (who, what, when, why) and fsync it; never rewrites the file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / AUDIT_FILE
    entry = {
        "time": utc_now_text(),
        "who": os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        "what": "verify.failed",
        "bundle": str(bundle.resolve()),
        "status": status,
        "why": problems[:20],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path
