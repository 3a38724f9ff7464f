"""``vqual state upgrade``: move a state directory to a pinned, signed trust store.

What it does (docs/upgrade.md): check that there is something to do (a second run says
"nothing to do"), copy the state directory aside (``<state>.backup-<UTC time>``), then make
the named trust-admin key a trust-admin of ``trust.yaml`` if it is not one, sign the store
as its next version and write the pin file (outside the state directory) that names that key
as the trust root. Everything is checked before the first write; if a write fails, what was
written is taken back, so the directory is never left half-way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qualification.errors import BadInputError, TrustError, VqualError
from qualification.evidence.records import parse_time, utc_now
from qualification.review.pinned import TrustChoice
from qualification.review.trust_history import (
    HISTORY_DIR,
    check_history,
    history,
    rooted_store,
    sign_trust_store,
)
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.trust_root import find_pin, new_root, parse_pin, pin_yaml, write_pin
from qualification.state import trust_path


@dataclass(frozen=True)
class UpgradeResult:
    """What an upgrade did (``done`` False: nothing to do)."""

    done: bool
    lines: tuple[str, ...]


def _already_upgraded(state_dir: Path, pin: Path | None) -> str | None:
    """The root line when the state directory already follows the rules, else None."""
    # Only through a pin, whatever legacy trust the environment asks for.
    try:
        root = find_pin(state_dir, pin)
        if root is None:
            return None
        timeline = rooted_store(state_dir, root)
    except VqualError:
        return None
    return TrustChoice(timeline, timeline.version, root).describe()


def _backup(state_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = state_dir.with_name(f"{state_dir.name}.backup-{stamp}")
    shutil.copytree(state_dir, target, symlinks=True)
    return target


def _pin_target(state_dir: Path, pin: Path | None) -> tuple[Path, bytes | None]:
    """Where the pin is (its bytes when it exists already)."""
    if pin is None:
        found = find_pin(state_dir)
        if found is None:
            raise BadInputError(
                "name the pin file to write with --trust-root FILE (outside the state directory)"
            )
        return found.path, found.path.read_bytes()
    found = find_pin(state_dir, pin) if pin.exists() else None
    if found is None and pin.resolve().is_relative_to(state_dir.resolve()):
        raise BadInputError(f"trust root {pin} must not be inside the state directory {state_dir}")
    return pin, pin.read_bytes() if found is not None else None


def upgrade_state(state_dir: Path, signer: Ed25519Signer, *, pin: Path | None = None,
                  name: str = "Trust root") -> UpgradeResult:
    """Upgrade ``state_dir`` (see the module's docstring).

    Raises:
        BadInputError: no trust store, no place for the pin, a pin that does not name the key.
        TrustError: the key cannot sign the store (not a trust-admin where it must be one, a
            history signed by another key).
    """
    path = trust_path(state_dir)
    if not path.exists():
        raise BadInputError(f"no trust store at {path}: nothing to upgrade")
    line = _already_upgraded(state_dir, pin)
    if line is not None:
        return UpgradeResult(False, (f"nothing to do: {line}",))
    pin_path, existing = _pin_target(state_dir, pin)
    _has_unsigned_change(state_dir)  # a broken history stops the upgrade here
    versions = history(state_dir)
    others = sorted({v.signed_by for v in versions if v.keyid != signer.keyid})
    if others:
        raise TrustError(
            f"the trust history is signed by {', '.join(others)}, not by the key named: "
            "upgrade with the key that signed it"
        )
    start = parse_time(versions[0].time) if versions else None
    root = new_root(signer.public_pem(), name, start or datetime.now(UTC))
    if existing is not None:
        roots = parse_pin(existing, str(pin_path))
        if signer.keyid not in {r.keyid for r in roots}:
            raise BadInputError(f"{pin_path} does not pin the key named ({signer.keyid[:16]})")
        pin_bytes = None
    else:
        pin_bytes = pin_yaml([root])
    backup = _backup(state_dir)
    lines = [f"backup: {backup}"]
    try:
        lines += _sign(state_dir, signer, name)
        if pin_bytes is not None:
            write_pin(pin_path, pin_bytes)
            lines.append(f"trust root pinned in {pin_path} (key {signer.keyid[:16]})")
    except BaseException:
        _restore(state_dir, backup)
        raise
    lines.append(f"set VQUAL_TRUST_ROOT={pin_path} (or pass --trust-root) for verify, sign, "
                 "qualify and patch")
    return UpgradeResult(True, tuple(lines))


def _has_unsigned_change(state_dir: Path) -> bool:
    try:
        check_history(state_dir)
    except TrustError as exc:
        if "trust.yaml is not signed version" in exc.message:
            return True
        raise
    return False


def _sign(state_dir: Path, signer: Ed25519Signer, name: str) -> list[str]:
    """Make ``signer`` a trust-admin of the store if needed and sign it as the next version."""
    lines = []
    store = TrustStore.load(trust_path(state_dir))
    key = store.get(signer.keyid)
    if key is None:
        store.add_key(public_key_pem=signer.public_pem(), name=name, identity=name,
                      roles=["trust-admin"], valid_from=datetime.now(UTC))
        store.save()
        lines.append(f"added {name} ({signer.keyid[:16]}) to trust.yaml as trust-admin")
    elif "trust-admin" not in key.roles:
        raise TrustError(f"key {signer.keyid[:16]} ({key.name}) is not a trust-admin")
    version = sign_trust_store(state_dir, signer, f"vqual state upgrade at {utc_now()}")
    lines.append(f"trust store version {version.version} signed by {version.signed_by}")
    return lines


def _restore(state_dir: Path, backup: Path) -> None:
    """Take back what an upgrade wrote: trust.yaml and the history, from the backup."""
    shutil.copy2(backup / trust_path(state_dir).name, trust_path(state_dir))
    history_dir = state_dir / HISTORY_DIR
    shutil.rmtree(history_dir, ignore_errors=True)
    if (backup / HISTORY_DIR).is_dir():
        shutil.copytree(backup / HISTORY_DIR, history_dir, symlinks=True)
