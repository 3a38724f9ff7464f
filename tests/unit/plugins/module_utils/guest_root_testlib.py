"""A small guest root file system, as the fingerprint probe reads one (shared by the probe's
tests and the fingerprint check types' tests)."""

from __future__ import annotations

from pathlib import Path

STATUS = """Package: openssh-server
Status: install ok installed
Version: 1:9.2p1-2+deb12u5

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: procps
Status: install ok installed
Version: 2:4.0.2-3
"""


def make_root(root: Path) -> Path:
    """A small guest file system: os-release, dpkg status, passwd/group, key files."""
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "var" / "lib" / "dpkg" / "status").write_text(STATUS)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nadm:x:4:sshd,root\n")
    (root / "etc" / "hostname").write_text("vqual-template\n")
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "ssh" / "sshd_config").write_text("PermitRootLogin prohibit-password\n")
    (root / "etc" / "issue").write_text("Debian GNU/Linux 12\n")
    return root
