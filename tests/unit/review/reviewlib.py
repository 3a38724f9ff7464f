"""Helpers for review tests: people's key files in a real trust store, sealed bundles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from qualification.signing import Ed25519Signer, TrustStore, create_key

PASS = b"correct horse battery"


@dataclass
class Person:
    key_file: Path
    keyid: str
    name: str
    identity: str

    def signer(self, passphrase: bytes = PASS) -> Ed25519Signer:
        return Ed25519Signer.from_file(self.key_file, passphrase)


def add_person(
    state: Path,
    name: str,
    identity: str,
    roles: list[str],
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    trusted: bool = True,
) -> Person:
    """A passphrase-protected key file for ``name``, added to the state's trust store."""
    folder = state / "people"
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / f"{identity}.pem"
    keyid = create_key(key_file, passphrase=PASS, name=name, identity=identity)
    if trusted:
        path = state / "trust.yaml"
        store = TrustStore.load(path) if path.exists() else TrustStore.empty(path)
        store.add_key(
            public_key_pem=Path(str(key_file) + ".pub").read_text(),
            name=name,
            identity=identity,
            roles=roles,
            valid_from=valid_from or datetime.now(UTC) - timedelta(days=1),
            valid_until=valid_until,
        )
        store.save()
    return Person(key_file, keyid, name, identity)


def approval_spec(folder: Path) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "expected.yaml").write_text("kernel: 6.1\n")
    spec = {
        "apiVersion": "vqual/v1",
        "kind": "Protocol",
        "metadata": {"name": "approved-proto", "title": "Approval test", "version": "1.0"},
        "requirements": ["URS-HV-02"],
        "data_files": {"expected": "data/expected.yaml"},
        "tests": [
            {
                "id": "IQ-A-001",
                "title": "passwd exists",
                "protocol": "IQ",
                "requirements": ["URS-HV-02"],
                "applies_to": ["linux_host"],
                "risk": ["high", "medium", "low"],
                "check": "file_exists",
                "params": {"path": "/etc/passwd"},
                "expect": {"op": "equals", "value": True},
                "acceptance": "present",
            }
        ],
    }
    path = folder / "proto.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
