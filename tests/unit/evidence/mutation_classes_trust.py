"""Mutation classes of the pinned trust root and trusted time (issue 13), on the trusted change.

They act on ``Base.build_trusted`` (:mod:`mutation_testlib`): seals and signatures followed
by ``timestamp`` records from a real TSA, a trust history of two versions signed by the
pinned test root (version 2, signed after every record, adds the executor key
``case.base.later``). The attacker writes the state directory (``case.state``: trust store
and history) and the evidence; they hold the executor keys but neither the pinned root nor
the reviewers' keys, so records signed by others are dropped, never re-signed. Registered
into :data:`mutation_classes.REGISTRY` on import.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

from qualification.evidence.canonical import canonical_bytes
from qualification.evidence.records import format_time, parse_time
from qualification.review.documents import sign_document, signer_fields
from qualification.review.trust_history import HISTORY_DIR, TRUST_KIND, TRUST_TYPE
from qualification.signing import TrustStore
from qualification.signing.dsse import parse_envelope
from qualification.signing.keys import Ed25519Signer
from qualification.signing.timestamping import request_token
from qualification.state import trust_path
from tests.unit.evidence.evidence_testlib import SINCE
from tests.unit.evidence.mutation_classes import mutation
from tests.unit.evidence.mutation_testlib import RUNS, Case
from tests.unit.evidence.tamper_testlib import lines_of, records, sign_records, write_lines

NOT_IN_FORCE = "was not in trust store version 1, in force at that time"


def _where(index: int) -> str:
    return f"records.jsonl line {index + 1} (seq {index})"


def _own(case: Case, i: int) -> list[dict[str, Any]]:
    """Run ``i``'s records the executor wrote: up to ``run.end`` and its ``timestamp``."""
    recs = records(case.run(i))
    end = next(n for n, r in enumerate(recs) if r["kind"] == "run.end")
    return recs[: end + 2]


def _end(case: Case, i: int) -> int:
    return next(n for n, r in enumerate(records(case.run(i))) if r["kind"] == "run.end")


# ---------------------------------------------------------------- the trust history


def _version_paths(case: Case, n: int) -> tuple[Path, Path]:
    folder = case.state / HISTORY_DIR
    return folder / f"v{n:04d}.yaml", folder / f"v{n:04d}.sig.json"


def _payload(case: Case, n: int) -> dict[str, Any]:
    _, sig = _version_paths(case, n)
    out: dict[str, Any] = json.loads(parse_envelope(sig.read_bytes().rstrip(b"\n")).payload)
    return out


def _sign_version(
    case: Case, n: int, store: TrustStore, signer: Ed25519Signer, when: str, prev: str | None
) -> str:
    """Write ``store`` as version ``n`` and as ``trust.yaml``, signed by ``signer`` (a
    trust-admin ``store`` lists) at ``when`` as ``vqual trust sign`` would, but without its
    token (the TSA's time would betray ``when``): returns its digest."""
    yaml_path, sig_path = _version_paths(case, n)
    data = store.to_yaml()
    digest = hashlib.sha256(data).hexdigest()
    yaml_path.write_bytes(data)
    trust_path(case.state).write_bytes(data)
    payload = {
        "v": 1,
        "kind": TRUST_KIND,
        "version": n,
        "digest": digest,
        "prev": prev,
        **signer_fields(store.keys[signer.keyid], when, "attacker"),
        "changes": [],
    }
    sig_path.write_bytes(sign_document(signer, TRUST_TYPE, payload) + b"\n")
    sig_path.with_name(sig_path.name + ".tsr").unlink(missing_ok=True)
    return digest


def _with_keys(path: Path, *admins: Ed25519Signer, executor: Ed25519Signer | None = None,
               tsa: bool = True) -> TrustStore:
    """The store at ``path`` loaded, with the attacker's keys added (and its TSA removed
    unless ``tsa``): the caller saves it where it belongs."""
    store = TrustStore.load(path)
    for key in admins:
        store.add_key(public_key_pem=key.public_pem(), name="Mallory Admin",
                      identity="mallory@example.com", roles=["trust-admin"],
                      valid_from=SINCE)
    if executor is not None:
        store.add_key(public_key_pem=executor.public_pem(), name="Mallory CI",
                      identity="svc-mallory@example.com", roles=["executor"],
                      valid_from=SINCE)
    if not tsa:
        store.tsa = None
    return store


def _resign_with(case: Case, i: int, signer: Ed25519Signer, rng: random.Random) -> int:
    """Run ``i`` re-signed with ``signer`` from a seeded record up to ``run.end`` on (times
    kept, reviewers' signatures dropped): returns that record's index. (A ``timestamp`` is
    judged by the key of the record it stamps, which must sign it too.)"""
    own = _own(case, i)
    k = rng.randrange(len(own) - 1)
    sign_records(case.run(i), case.keys.executor, own,
                 signer_at={n: signer for n in range(k, len(own))})
    return k


@mutation(
    "trust-version-backdated",
    "the trust version adding a key moved before a record's time (edited, re-signed by the "
    "attacker's trust-admin, or the whole history rewritten) and the run re-signed with it",
    base="trusted",
)
def _version_backdated(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = rng.randrange(len(RUNS))
    recs = records(case.run(i))
    stamp = parse_time(rng.choice(recs)["time"])
    assert stamp is not None
    when = format_time(stamp - timedelta(microseconds=rng.randrange(1, 10**6)))
    later = case.base.later
    assert later is not None
    _resign_with(case, i, later, rng)  # what the backdated version is to make count
    how = rng.choice(["edited", "resigned", "rewritten"])
    if how == "edited":  # the signing time edited in place; the signature left as it was
        _, sig = _version_paths(case, 2)
        env = json.loads(sig.read_bytes())
        moved = canonical_bytes({**_payload(case, 2), "time": when})
        env["payload"] = base64.b64encode(moved).decode("ascii")
        sig.write_bytes(canonical_bytes(env) + b"\n")
        root = _payload(case, 2)["keyid"]
        return (
            "trust store refused:",
            f"trust store version 2 is not validly signed: signature by key {root[:16]} does not",
        )
    mallory = Ed25519Signer.generate()
    if how == "resigned":  # re-signed by a trust-admin key of the attacker's own
        yaml_path, _ = _version_paths(case, 2)
        store = _with_keys(yaml_path, mallory)
        _sign_version(case, 2, store, mallory, when, _payload(case, 2)["prev"])
        return (
            "trust store refused:",
            f"trust store version 2 is not validly signed: signature by key {mallory.keyid[:16]}",
        )
    # The whole history rewritten, bootstrapped by the attacker's key, without the TSA (whose
    # tokens would betray the times): only the pin is left to refuse it.
    first = format_time(stamp - timedelta(seconds=rng.randrange(2, 3600)))
    v1 = _with_keys(_version_paths(case, 1)[0], mallory, tsa=False)
    prev = _sign_version(case, 1, v1, mallory, first, None)
    v2 = _with_keys(_version_paths(case, 2)[0], mallory, tsa=False)
    _sign_version(case, 2, v2, mallory, when, prev)
    return (
        "trust store refused:",
        "trust store version 1 is not signed by the pinned trust root",
        f"key {mallory.keyid[:16]} is not a pinned trust root",
    )


@mutation(
    "key-added-after-record",
    "a run re-signed with an executor key the trust store gained after the run (a signed later "
    "version, or one the attacker adds and signs themselves), its record times kept",
    base="trusted",
)
def _key_added_later(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = rng.randrange(len(RUNS))
    how = rng.choice(["insider", "insider", "self-signed", "unsigned"])
    if how == "insider":  # the key version 2 added, signed by the root after the run
        later = case.base.later
        assert later is not None
        k = _resign_with(case, i, later, rng)
        return (f"run {RUNS[i]}: {_where(k)}: key {later.keyid[:16]} {NOT_IN_FORCE}",)
    mallory, admin = Ed25519Signer.generate(), Ed25519Signer.generate()
    _resign_with(case, i, mallory, rng)
    store = _with_keys(trust_path(case.state), admin, executor=mallory)
    if how == "unsigned":
        store.save()
        return ("trust store refused:", "trust.yaml is not signed version 2")
    # Signed "at the run's start", by an admin version 2 does not list.
    start = str(records(case.run(i))[0]["time"])
    _sign_version(case, 3, store, admin, start, _payload(case, 2)["digest"])
    return ("trust store refused:", "trust store version 3 is not validly signed")


# ---------------------------------------------------------------- timestamp records


@mutation(
    "timestamp-dropped",
    "the timestamp record after run.end (chain re-signed with the executor key) or after a "
    "signature removed",
    base="trusted",
)
def _timestamp_dropped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = rng.randrange(len(RUNS))
    recs = records(case.run(i))
    stamped = [n for n, r in enumerate(recs) if r["kind"] in ("run.end", "signature")]
    s = rng.choice(stamped)
    if recs[s]["kind"] == "run.end":
        # The insider re-signs the chain without it; the reviewers' signatures go with it.
        sign_records(case.run(i), case.keys.executor, recs[: s + 1])
    else:
        # A signature's token (the reviewer's key signed it): cut from there, no re-signing.
        write_lines(case.run(i), lines_of(case.run(i))[: s + 1])
    kind = recs[s]["kind"]
    return (f"run {RUNS[i]}: {_where(s)}: {kind} has no timestamp record after it",)


@mutation(
    "timestamp-swapped",
    "run.end's timestamp token replaced by another run's, a signature's or a fresh token over "
    "another digest, the chain re-signed with the executor key",
    base="trusted",
)
def _timestamp_swapped(case: Case, rng: random.Random) -> tuple[str, ...]:
    i = rng.randrange(len(RUNS))
    own = _own(case, i)
    e = _end(case, i)
    source = rng.choice(["other run", "signature", "fresh"])
    if source == "fresh":
        assert case.base.tsa is not None
        token = request_token(case.base.tsa.url, rng.getrandbits(256).to_bytes(32, "big"))
        der, gen_time = base64.b64encode(token.der).decode(), format_time(token.gen_time)
    else:
        runs = [j for j in range(len(RUNS)) if j != i] if source == "other run" else [0, 1]
        j = rng.choice(runs)
        theirs = records(case.run(j))
        kinds = ("run.end",) if source == "other run" else ("signature",)
        at = rng.choice([n for n, r in enumerate(theirs) if r["kind"] in kinds])
        data = theirs[at + 1]["data"]
        der, gen_time = data["token"], data["gen_time"]
    own[e + 1]["data"].update(token=der, gen_time=gen_time)
    sign_records(case.run(i), case.keys.executor, own)
    return (
        f"run {RUNS[i]}: {_where(e + 1)}: token for seq {e} (run.end): token covers digest",
    )
