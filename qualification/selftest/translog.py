"""OQ self check of ``vqual verify --log`` (VQ-61): a scratch run's seal in a transparency log
of three leaves (pymerkle's tree, a checkpoint signed by a scratch key of role ``log``) is
proven included by the log-proof check ``vqual verify --log`` runs; the same proof with one
hash of its path changed is refused as not included. In-process: no server, no network."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.logproof import (
    CHECKPOINT_TYPE,
    PROOF_FORMAT,
    bundle_leaves,
    check_proof,
    leaf_hash,
)
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch
from qualification.signing import Ed25519Signer
from qualification.signing.dsse import sign_envelope
from qualification.timeutil import utc_now as utc_now_dt
from qualification.timeutil import utc_text

WANT = {"matching": "included", "not_matching": "not included"}


def _proof(s: Scratch) -> tuple[dict[str, Any], Any]:
    """A scratch run, a log holding its seal between two other leaves, and the log proof."""
    from pymerkle import InmemoryTree

    log_key = Ed25519Signer.generate()
    s.trust.add_key(public_key_pem=log_key.public_pem(), name="Selftest log",
                    identity="selftest-log", roles=["log"],
                    valid_from=utc_now_dt().replace(year=2000), throwaway=True)
    bundle = s.bundle()
    tree = InmemoryTree(algorithm="sha256")
    for leaf in (b'{"kind":"seal","run_id":"before"}', bundle_leaves(bundle)[0],
                 b'{"kind":"seal","run_id":"after"}'):
        tree.append_entry(leaf)
    payload = {"keyid": log_key.keyid, "name": "Selftest log", "root": tree.get_root().hex(),
               "size": 3, "time": utc_text(utc_now_dt())}
    envelope = sign_envelope(canonical_bytes(payload), log_key, CHECKPOINT_TYPE).to_bytes()
    proof = {"format": PROOF_FORMAT, "server": "selftest:", "consistency": [],
             "checkpoint": json.loads(envelope),
             "inclusion": [{"what": "seal", "leaf_hash": leaf_hash(bundle_leaves(bundle)[0]),
                            "index": 2, "proof": tree.prove_inclusion(2).serialize()}]}
    return proof, bundle


def _judged(scratch: Callable[[], Scratch]) -> Outcome:
    s = scratch()
    proof, bundle = _proof(s)
    got = {}
    for case in ("matching", "not_matching"):
        if case == "not_matching":  # one hash of the inclusion path changed
            path = proof["inclusion"][0]["proof"]["path"]
            path[0] = ("11" if path[0] != "11" * 32 else "22") * 32
        result = check_proof(proof, bundle, s.root / f"state-{case}", s.trust, offline=True)
        got[case] = ("included" if not result.problems and result.included == [("seal", 2)]
                     else "not included" if any(" not included in the log: " in p
                                                for p in result.problems)
                     else f"{result.problems[:2]}")
    return Outcome(got == WANT, got)


def translog_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: a log proof that matches proves inclusion; one that does not is refused."""
    try:
        import pymerkle  # noqa: F401 - the server extra, which judges the proofs
    except ImportError:
        missing = True
    else:
        missing = False
    return [
        SelfCheck(
            "ST-OQ-25",
            "vqual verify --log proves a run's seal included in a transparency log under a "
            "checkpoint signed by a log key, and refuses an inclusion proof that does not match",
            "OQ",
            "VQ-61",
            "a sealed scratch run's seal leaf in a three-leaf log (pymerkle), a checkpoint signed "
            "by a scratch key of role log; the log proof checked as vqual verify --log checks a "
            "saved one, then again with one hash of its inclusion path changed",
            {"op": "equals", "value": WANT},
            lambda: _judged(scratch),
            not_executed=("pymerkle is not installed (the server extra: pip install "
                          "'vqual[server]')") if missing else None,
        )
    ]
