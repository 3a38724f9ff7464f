"""Trust store integrity: every version of ``trust.yaml`` signed by a trust-admin.

``<state>/trust-history/`` keeps each signed version: ``v<NNNN>.yaml`` (the store's bytes) and
``v<NNNN>.sig.json`` (a DSSE envelope, payload type :data:`TRUST_TYPE`) whose payload names
the version, the SHA-256 of those bytes, the previous version's digest, the signer and a
summary of what changed. The signer must be a trust-admin that is valid at the signing time
in the *previous* version, so nobody admits themselves; version 1 is the bootstrap, signed by a
trust-admin listed in that version itself (docs/review.md says how to make it).

A store with a history is always checked: the current ``trust.yaml`` must be the latest signed
version, byte for byte, and the chain of versions must hold. With
``require_signed_trust: true`` in ``config.yaml`` a store without a history is refused too.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from qualification.errors import TrustError, VqualError
from qualification.evidence.records import parse_time, utc_now
from qualification.evidence.trusted_time import check_file, stamp_file
from qualification.review.documents import (
    check_signer,
    open_document,
    sign_document,
    signer_fields,
    write_new,
)
from qualification.signing import Signer, TrustStore
from qualification.signing.dsse import parse_envelope
from qualification.signing.trust_root import TrustRoot, TrustTimeline, check_versions_rooted
from qualification.signing.trusted_tsa import describe_tsa_change
from qualification.state import trust_path

HISTORY_DIR = "trust-history"
TRUST_TYPE = "application/vnd.vqual.trust+json"
TRUST_KIND = "trust.version"
_VERSION_FILE = re.compile(r"v(\d{4,})\.yaml")


@dataclass(frozen=True)
class TrustVersion:
    """A signed version of the trust store."""

    version: int
    digest: str
    signed_by: str
    keyid: str
    time: str
    changes: tuple[str, ...]


def _paths(state_dir: Path, version: int) -> tuple[Path, Path]:
    base = state_dir / HISTORY_DIR / f"v{version:04d}"
    return base.with_suffix(".yaml"), base.with_suffix(".sig.json")


def _versions(state_dir: Path) -> list[int]:
    folder = state_dir / HISTORY_DIR
    if not folder.is_dir():
        return []
    found = [_VERSION_FILE.fullmatch(p.name) for p in folder.iterdir()]
    return sorted(int(m.group(1)) for m in found if m)


def describe_changes(old: TrustStore | None, new: TrustStore) -> list[str]:
    """What changed between two versions, one line per key and one for the TSA."""
    before = old.keys if old is not None else {}
    lines = []
    for keyid, key in new.keys.items():
        was = before.get(keyid)
        if was is None:
            lines.append(f"added {key.name} <{key.identity}> {keyid[:16]} as {','.join(key.roles)}")
        elif was != key:
            fields = [
                f
                for f in (
                    "name",
                    "identity",
                    "roles",
                    "valid_from",
                    "valid_until",
                    "revoked_at",
                    "throwaway",
                    "public_key_pem",
                )
                if getattr(was, f) != getattr(key, f)
            ]
            lines.append(f"changed {key.name} {keyid[:16]}: {', '.join(fields)}")
    for keyid, key in before.items():
        if keyid not in new.keys:
            lines.append(f"removed {key.name} {keyid[:16]}")
    return lines + describe_tsa_change(old.tsa if old is not None else None, new.tsa)


def check_history(state_dir: Path) -> tuple[TrustStore, TrustVersion | None]:
    """The trust store and the signed version it is, or None when it has no history.

    Raises:
        TrustError: the history is broken (a version not signed by a trust-admin of the
            previous version, a digest or link that does not match), or ``trust.yaml`` is not
            the latest signed version (an unsigned change or tampering).
    """
    store, walked = _walk(state_dir)
    return store, walked[-1][0] if walked else None


def _walk(state_dir: Path) -> tuple[TrustStore, list[tuple[TrustVersion, TrustStore]]]:
    """:func:`check_history` with every signed version and its store, oldest first."""
    path = trust_path(state_dir)
    store = TrustStore.load(path)
    versions = _versions(state_dir)
    walked: list[tuple[TrustVersion, TrustStore]] = []
    if not versions:
        return store, walked
    if versions != list(range(1, len(versions) + 1)):
        raise TrustError(
            f"trust history versions are not 1..{len(versions)}: {versions}",
            where=str(state_dir / HISTORY_DIR),
        )
    previous: TrustStore | None = None
    prev_digest: str | None = None
    latest: TrustVersion | None = None
    for number in versions:
        yaml_path, sig_path = _paths(state_dir, number)
        where = f"{HISTORY_DIR}/{sig_path.name}"
        try:
            data = yaml_path.read_bytes()
            envelope = sig_path.read_bytes()
        except OSError as exc:
            raise TrustError(
                f"version {number} cannot be read: {exc.strerror}", where=where
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        this = TrustStore.load(yaml_path)
        # The signer is judged by the previous version; the bootstrap by itself.
        judge = previous if previous is not None else this
        try:
            doc = open_document(envelope, TRUST_TYPE, judge, "trust-admin", where=where)
        except VqualError as exc:
            raise TrustError(
                f"trust store version {number} is not validly signed: {exc.message}", where=where
            ) from None
        payload = doc.payload
        check_file(judge, sig_path, payload["time"], error=TrustError)
        if payload.get("kind") != TRUST_KIND or payload.get("version") != number:
            raise TrustError(f"signature is not for trust store version {number}", where=where)
        if payload.get("digest") != digest:
            raise TrustError(f"v{number:04d}.yaml differs from what was signed", where=where)
        if payload.get("prev") != prev_digest:
            raise TrustError(f"version {number} does not follow version {number - 1}", where=where)
        changes = payload.get("changes")
        latest = TrustVersion(
            number,
            digest,
            doc.key.name,
            doc.keyid,
            str(payload["time"]),
            tuple(str(c) for c in changes) if isinstance(changes, list) else (),
        )
        walked.append((latest, this))
        previous, prev_digest = this, digest
    assert latest is not None
    if store.digest != latest.digest:
        raise TrustError(
            f"trust.yaml is not signed version {latest.version} (sha256 {latest.digest[:16]}): "
            "an unsigned change or tampering; a trust-admin signs changes with `vqual trust sign`",
            where=str(path),
        )
    return store, walked


def sign_trust_store(state_dir: Path, signer: Signer, comment: str | None = None) -> TrustVersion:
    """Sign the current ``trust.yaml`` as the next version.

    Raises:
        TrustError: the history is broken, nothing changed since the last version, or the
            signer is not a trust-admin valid now in the previous version (in this version
            for the bootstrap).
    """
    path = trust_path(state_dir)
    versions = _versions(state_dir)
    previous: TrustStore | None = None
    prev_digest: str | None = None
    if versions:
        previous_yaml, _ = _paths(state_dir, versions[-1])
        # The history must hold up to its last version before anything is added to it.
        _check_chain_only(state_dir)
        previous = TrustStore.load(previous_yaml)
        prev_digest = previous.digest
    data = path.read_bytes()
    store = TrustStore.load(path)
    if store.digest == prev_digest:
        raise TrustError(f"trust.yaml has not changed since version {versions[-1]}")
    judge = previous if previous is not None else store
    key = check_signer(judge, signer.keyid, "trust-admin")
    number = (versions[-1] + 1) if versions else 1
    now = utc_now()
    changes = describe_changes(previous, store)
    payload = {
        "v": 1,
        "kind": TRUST_KIND,
        "version": number,
        "digest": store.digest,
        "prev": prev_digest,
        **signer_fields(key, now, comment),
        "changes": changes,
    }
    yaml_path, sig_path = _paths(state_dir, number)
    write_new(yaml_path, data)
    write_new(sig_path, sign_document(signer, TRUST_TYPE, payload) + b"\n")
    stamp_file(judge, sig_path, undo=(yaml_path,))  # trusted time: cannot be backdated
    return TrustVersion(number, str(store.digest), key.name, key.keyid, now, tuple(changes))


def _check_chain_only(state_dir: Path) -> None:
    """Check the history's chain, whatever the current trust.yaml holds."""
    try:
        check_history(state_dir)
    except TrustError as exc:
        if "trust.yaml is not signed version" not in exc.message:
            raise


def trusted_store(state_dir: Path, *, require_signed: bool) -> tuple[TrustStore, int | None]:
    """The trust store to judge signatures with, and its signed version (None: unsigned).

    Raises:
        TrustError: a broken history, an unsigned change, or (``require_signed``) no history.
    """
    store, version = check_history(state_dir)
    if version is None and require_signed:
        raise TrustError(
            "trust store is not signed (require_signed_trust is set): a trust-admin runs "
            "`vqual trust sign`",
            where=str(trust_path(state_dir)),
        )
    return store, version.version if version else None


def history(state_dir: Path) -> list[TrustVersion]:
    """Every signed version, oldest first, as recorded (not re-verified)."""
    out = []
    for number in _versions(state_dir):
        _, sig_path = _paths(state_dir, number)
        try:
            env = parse_envelope(sig_path.read_bytes().rstrip(b"\n"))
            payload = json.loads(env.payload)
        except (VqualError, OSError, ValueError):
            continue
        changes = payload.get("changes")
        out.append(
            TrustVersion(
                number,
                str(payload.get("digest")),
                str(payload.get("name")),
                str(payload.get("keyid")),
                str(payload.get("time")),
                tuple(str(c) for c in changes) if isinstance(changes, list) else (),
            )
        )
    return out


def rooted_store(state_dir: Path, root: TrustRoot) -> TrustTimeline:
    """The trust store judged by time, every signed version vouched for by ``root``.

    Raises:
        TrustError: the store is not signed, its history is broken or not in time order, a
            version is not signed by a root key pinned for its signing time, or
            ``trust.yaml`` is not the latest signed version.
    """
    store, walked = _walk(state_dir)
    if not walked:
        raise TrustError(
            "trust store is not signed, so the pinned trust root vouches for nothing: a "
            "trust-admin runs `vqual trust sign` (or `vqual state upgrade`)",
            where=str(trust_path(state_dir)),
        )
    timed: list[tuple[datetime, TrustVersion, TrustStore]] = []
    for version, this in walked:
        when = parse_time(version.time)
        if when is None:
            raise TrustError(f"version {version.version} has no valid signing time")
        if timed and when < timed[-1][0]:
            raise TrustError(
                f"trust store version {version.version} is signed before version "
                f"{version.version - 1} ({version.time})",
                where=str(state_dir / HISTORY_DIR),
            )
        timed.append((when, version, this))
    check_versions_rooted(root, [(w, v.version, v.keyid) for w, v, _ in timed])
    return TrustTimeline.build(
        store, [(w, v.version, s) for w, v, s in timed], timed[-1][1].keyid, root.source
    )
