"""OQ self checks of the pinned trust root (VQ-35, VQ-36), on scratch state directories.

ST-OQ-16: a run verifies through a store its pinned root signed; the same run re-signed with
a fresh key, in a store whose whole history the "attacker" rebuilt with a trust-admin of their
own, is refused through the same pin. ST-OQ-17: a key that entered the store after a record's
time cannot vouch for it, and a root rotated out cannot sign a later version.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qualification.errors import TrustError
from qualification.evidence.bundle import BundleWriter
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.evidence.verify import verify_bundle
from qualification.execution.recorder import add_renderings
from qualification.review.trust_history import rooted_store, sign_trust_store
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import TrustRoot, new_root, rotate

_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WANT_ATTACK = {"honest": "valid", "rebuilt_store": "refused"}
WANT_TIME = {"late_key": "invalid", "rotated_out_root": "refused", "new_root": "accepted"}


def _state(folder: Path, admin: Ed25519Signer, *executors: Ed25519Signer) -> Path:
    store = TrustStore.empty(folder / "trust.yaml")
    store.add_key(public_key_pem=admin.public_pem(), name="Selftest root", identity="root",
                  roles=["trust-admin"], valid_from=_SINCE, throwaway=True)
    for n, key in enumerate(executors):
        store.add_key(public_key_pem=key.public_pem(), name=f"Selftest executor {n}",
                      identity=f"executor-{n}", roles=["executor"], valid_from=_SINCE,
                      throwaway=True)
    store.save()
    sign_trust_store(folder, admin)
    return folder


def _run(folder: Path, signer: Ed25519Signer) -> Path:
    w = BundleWriter.create(folder / "ev", "SELFTEST", "20000101T000000Z-000001", signer,
                            "selftest")
    w.append(RUN_START, {"mode": "selftest", "prev_run_seal": None,
                         "planned": [{"test_id": "T-1", "target": "t", "protocol": "IQ"}]})
    w.append(CHECK_RESULT, {"test_id": "T-1", "target": "t", "protocol": "IQ",
                            "verdict": "pass", "raw": None})
    add_renderings(w)
    w.seal({"pass": 1}, 1, 1, "pass")
    return w.path


def _pin(admin: Ed25519Signer) -> TrustRoot:
    return TrustRoot((new_root(admin.public_pem(), "Selftest root", _SINCE),), "selftest",
                     Path("selftest-pin"))


def _judged(state: Path, root: TrustRoot, bundle: Path) -> str:
    try:
        timeline = rooted_store(state, root)
    except TrustError:
        return "refused"
    return verify_bundle(bundle, timeline, workers=1).status


def attack_refused(folder: Path) -> Outcome:
    admin, executor = Ed25519Signer.generate(), Ed25519Signer.generate()
    state = _state(folder / "honest", admin, executor)
    root = _pin(admin)
    honest = _judged(state, root, _run(folder / "honest", executor))
    # The attacker: a fresh executor and a trust-admin of their own, the history rebuilt.
    forged_admin, forged = Ed25519Signer.generate(), Ed25519Signer.generate()
    attacked = _state(folder / "attacked", forged_admin, forged)
    got = {"honest": honest,
           "rebuilt_store": _judged(attacked, root, _run(folder / "attacked", forged))}
    return Outcome(got == WANT_ATTACK, got)


def time_indexed(folder: Path) -> Outcome:
    admin, executor, late = (Ed25519Signer.generate() for _ in range(3))
    state = _state(folder / "late", admin, executor)
    bundle = _run(folder / "late", late)  # signed now, by a key not yet in the store
    store = TrustStore.load(state / "trust.yaml")
    store.add_key(public_key_pem=late.public_pem(), name="Late", identity="late",
                  roles=["executor"], valid_from=_SINCE, throwaway=True)
    store.save()
    sign_trust_store(state, admin)
    late_status = _judged(state, _pin(admin), bundle)
    # Rotation: the new root takes over now; the old one then signs a version anyway.
    successor = Ed25519Signer.generate()
    store.add_key(public_key_pem=successor.public_pem(), name="Successor", identity="next",
                  roles=["trust-admin"], valid_from=_SINCE, throwaway=True)
    store.save()
    sign_trust_store(state, admin)
    roots = rotate(_pin(admin).roots, admin, successor.public_pem(), "Successor",
                   datetime.now(UTC) + timedelta(microseconds=1))
    rotated = TrustRoot(roots, "selftest", Path("selftest-pin"))
    store.revoke(executor.keyid, datetime.now(UTC) + timedelta(days=1))  # a next version
    store.save()
    old_signs = folder / "old-signs"
    shutil.copytree(state, old_signs)
    sign_trust_store(old_signs, admin)
    sign_trust_store(state, successor)
    got = {
        "late_key": late_status,
        "rotated_out_root": "refused" if _refused(old_signs, rotated) else "accepted",
        "new_root": "refused" if _refused(state, rotated) else "accepted",
    }
    return Outcome(got == WANT_TIME, got)


def _refused(state: Path, root: TrustRoot) -> bool:
    try:
        rooted_store(state, root)
    except TrustError:
        return True
    return False


def trust_root_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: the pinned trust root vouches for the store; keys are judged at records' times."""
    def folder(name: str) -> Path:
        path = scratch().root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    return [
        SelfCheck(
            "ST-OQ-16",
            "a run re-signed with a fresh key, in a trust store whose whole history was "
            "rebuilt by another trust-admin, is refused through the pinned root",
            "OQ", "VQ-35",
            "a scratch state directory signed by a throwaway root, a run verified through its "
            "pin; a second state directory with its own trust-admin and executor judged "
            "through the same pin",
            {"op": "equals", "value": WANT_ATTACK},
            lambda: attack_refused(folder("trust-root-attack")),
        ),
        SelfCheck(
            "ST-OQ-17",
            "a key added to the trust store after a record's time cannot vouch for it; a "
            "rotated-out root cannot sign a later trust store version",
            "OQ", "VQ-36",
            "a run signed by a key the store admits only in a later version, verified through "
            "the pin; the pin rotated to a new root, then a version signed by the old root and "
            "one by the new root",
            {"op": "equals", "value": WANT_TIME},
            lambda: time_indexed(folder("trust-root-time")),
        ),
    ]
