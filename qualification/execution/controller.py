"""Facts about the controller a run records in ``run.start``: versions, host, clock."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from importlib import metadata
from typing import Any

from qualification import __version__

_DISTRIBUTIONS = (
    "ansible-core", "ansible-runner", "cryptography", "jinja2", "junit-xml", "jsonschema",
    "libvirt-python", "pyvmomi", "pywinrm", "pytest-testinfra", "rfc8785", "PyYAML",
)


def versions() -> dict[str, str]:
    """Versions of vqual, Python and the libraries a run depends on."""
    found: dict[str, str] = {"vqual": __version__, "python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def controller_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pid": os.getpid(),
    }


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def clock_status() -> dict[str, Any]:
    """Whether the controller's clock is synchronised, as far as the machine can tell.

    ``synchronized`` is None when no time-sync service answers: the record says so rather
    than claiming a synchronised clock (Annex 11 wants time stamps from a synchronised clock).
    """
    out = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if out is not None and out.strip() in ("yes", "no"):
        return {"synchronized": out.strip() == "yes", "source": "timedatectl", "detail": ""}
    out = _run(["chronyc", "-n", "tracking"])
    if out is not None:
        status = next((ln for ln in out.splitlines() if ln.startswith("Leap status")), "")
        return {
            "synchronized": "Normal" in status,
            "source": "chronyc",
            "detail": status.strip(),
        }
    if os.path.exists("/run/systemd/timesync/synchronized"):
        return {"synchronized": True, "source": "systemd-timesyncd", "detail": ""}
    return {
        "synchronized": None,
        "source": "none",
        "detail": "no time synchronisation service answered (timedatectl, chronyc)",
    }
