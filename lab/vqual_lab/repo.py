"""The lab's own apt repository, and the small package it offers an upgrade of.

Every lab KVM host has ``vqual-lab-agent`` 1.0 installed in its base; the repository under
``<lab dir>/repo`` (a flat ``file:`` repository, bind-mounted read-only into each host at
``/srv/vqual-repo`` and the *only* apt source there) offers 1.1. So a patch is a real
``apt-get install --only-upgrade`` inside one host that changes only that host's package
database, and never reaches the network.

The agent is a real, long-running service: ``busybox httpd`` serving its own version at
``http://<host address>:8080/version``, so process and port checks see something.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from qualification.errors import PlatformError

AGENT = "vqual-lab-agent"
BASE_VERSION = "1.0"  # installed in every host's base
REPO_VERSION = "1.1"  # offered by the lab repository: the patch
VARIANT_VERSION = "0.9"  # installed on one host by the ``pkg-version`` variation
REPO_MOUNT = "/srv/vqual-repo"
SOURCES_LINE = f"deb [trusted=yes] file:{REPO_MOUNT} ./\n"

_AGENT_SCRIPT = """#!/bin/sh
# vqual lab agent: a small real service for process and port checks.
exec busybox httpd -f -p "${VQUAL_AGENT_LISTEN:-127.0.0.1:8080}" -h /usr/share/vqual-lab-agent/www
"""


def debs_dir(lab_dir: Path) -> Path:
    return lab_dir / "cache" / "debs"


def repo_dir(lab_dir: Path) -> Path:
    return lab_dir / "repo"


def agent_deb(lab_dir: Path, version: str) -> Path:
    """Path of the cached ``vqual-lab-agent`` package of ``version`` (built on demand)."""
    path = debs_dir(lab_dir) / f"{AGENT}_{version}_all.deb"
    if not path.exists():
        build_agent_deb(path.parent, version)
    return path


def build_agent_deb(out_dir: Path, version: str) -> Path:
    """Build ``vqual-lab-agent_<version>_all.deb`` into ``out_dir`` with ``dpkg-deb``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{AGENT}_{version}_all.deb"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        root = Path(tmp) / "pkg"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN" / "control").write_text(
            f"Package: {AGENT}\n"
            f"Version: {version}\n"
            "Architecture: all\n"
            "Maintainer: vqual lab <lab@vqual.invalid>\n"
            "Depends: busybox\n"
            "Section: admin\n"
            "Priority: optional\n"
            "Description: vqual lab agent (test package)\n"
            " A tiny service whose version the lab upgrades to exercise patches.\n"
        )
        (root / "DEBIAN" / "conffiles").write_text(f"/etc/{AGENT}.conf\n")
        sbin = root / "usr" / "sbin"
        sbin.mkdir(parents=True)
        (sbin / AGENT).write_text(_AGENT_SCRIPT)
        (sbin / AGENT).chmod(0o755)
        www = root / "usr" / "share" / AGENT / "www"
        www.mkdir(parents=True)
        (www / "version").write_text(version + "\n")
        (root / "etc").mkdir()
        (root / "etc" / f"{AGENT}.conf").write_text(f"# {AGENT} configuration\nlevel = 1\n")
        for path in root.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
            elif path.parent != sbin:
                path.chmod(0o644)
        tmp_deb = Path(tmp) / target.name
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(tmp_deb)])
        os.replace(tmp_deb, target)
    return target


def ensure_repo(lab_dir: Path) -> Path:
    """Create (or refresh) the flat repository offering ``vqual-lab-agent`` 1.1.

    Returns:
        The repository directory.
    """
    repo = repo_dir(lab_dir)
    if (repo / "Release").exists() and (repo / f"{AGENT}_{REPO_VERSION}_all.deb").exists():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    repo.chmod(0o755)
    shutil.copy2(agent_deb(lab_dir, REPO_VERSION), repo / f"{AGENT}_{REPO_VERSION}_all.deb")
    write_index(repo)
    return repo


def write_index(repo: Path) -> None:
    """Write ``Packages``, ``Packages.gz`` and ``Release`` for the ``.deb`` files in ``repo``."""
    scan = _run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=repo)
    packages = scan.encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = [
        "Origin: vqual-lab",
        "Label: vqual-lab",
        "Suite: lab",
        "Codename: lab",
        "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()),
        "Architectures: all amd64",
        "Description: vqual lab package repository",
        "SHA256:",
    ]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    for path in repo.iterdir():
        path.chmod(0o644)


def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise PlatformError(
            f"{argv[0]} failed (exit {proc.returncode}): {msg[-1] if msg else 'no output'}",
            where="lab repo",
        )
    return proc.stdout
