"""The lab's TSA as the lab runs it (``vqual-lab up``): listed as running, named in the
inventory the lab wrote, and its tokens accepted by vqual and by ``openssl ts -verify``."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from vqual_lab import manager

from qualification.signing.timestamping import request_token, verify_token

pytestmark = pytest.mark.lab


def test_lab_tsa_stamps_and_openssl_agrees(lab: object, tmp_path: Path) -> None:
    ctx = manager.context()
    (status,) = manager.status(["tsa"], ctx=ctx)
    assert status.state == "running", status
    hosts = yaml.safe_load((manager.inventory_dir(ctx) / "hosts.yml").read_text())
    url = hosts["all"]["vars"]["vqual_tsa_url"]
    ca = Path(hosts["all"]["vars"]["vqual_tsa_ca_file"])
    digest = hashlib.sha256(b"lab TSA").digest()
    before = datetime.now(UTC) - timedelta(seconds=1)
    token = request_token(url, digest)
    verified = verify_token(token.der, digest, ca.read_bytes(), not_before=before,
                            not_after=datetime.now(UTC) + timedelta(seconds=1))
    assert verified.tsa_subject == "CN=vqual lab TSA,O=vqual lab"
    (tmp_path / "token.der").write_bytes(token.der)
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(tmp_path / "token.der"),
         "-digest", digest.hex(), "-CAfile", str(ca)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
