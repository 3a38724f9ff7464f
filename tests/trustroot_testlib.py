"""A real pinned trust root for tests: one throwaway trust-admin key per test process.

Importing this module writes the root's pin file into a temporary directory (never a state
directory) and points ``VQUAL_TRUST_ROOT`` at it, so every ``vqual`` command a test runs
finds it, in-process or as a subprocess. :func:`pin_state` makes the test root a trust-admin
of a state directory's ``trust.yaml`` and signs the store as its next version, as a
trust-admin would with ``vqual trust sign``; tests about legacy trust pass ``--legacy-trust``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from qualification.review.trust_history import history, sign_trust_store
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import PIN_ENV, new_root, pin_yaml
from qualification.state import trust_path

#: Valid since long before any record a test writes, including backdated ones.
ROOT_FROM = datetime(2000, 1, 1, tzinfo=UTC)
ROOT = Ed25519Signer.generate()
ROOT_NAME = "Test trust root (throwaway)"
_DIR = Path(tempfile.mkdtemp(prefix="vqual-test-root-"))
atexit.register(shutil.rmtree, _DIR, True)
PIN = _DIR / "trust-root.yaml"
PIN.write_bytes(pin_yaml([new_root(ROOT.public_pem(), ROOT_NAME, ROOT_FROM)]))
os.environ[PIN_ENV] = str(PIN)


def pin_state(state_dir: Path, signer: Ed25519Signer = ROOT) -> None:
    """Sign ``state_dir``'s trust store with ``signer`` when it has changed since its last
    signed version; a store whose history another key signed is left alone (tests of
    trust-store signing make their own)."""
    path = trust_path(state_dir)
    if not path.is_file():
        return
    versions = history(state_dir)
    if versions and versions[-1].keyid != signer.keyid:
        return
    store = TrustStore.load(path)
    if versions and store.digest == versions[-1].digest:
        return
    if signer.keyid not in store.keys:
        store.add_key(public_key_pem=signer.public_pem(), name=ROOT_NAME,
                      identity="trust-root@test.invalid", roles=["trust-admin"],
                      valid_from=ROOT_FROM, throwaway=True)
        store.save()
    sign_trust_store(state_dir, signer, "test trust root")
