"""``vqual keys``: create keys and put their public halves in the trust store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from qualification.signing import TrustStore, create_key
from qualification.state import trust_path
from qualification.timeutil import utc_now


def create_trusted_key(
    path: Path,
    state_dir: Path,
    *,
    name: str,
    identity: str,
    roles: list[str],
    passphrase: bytes | None,
    throwaway: bool,
    valid_days: int,
) -> str:
    """Create a key file (0600) and add it to the trust store; returns the key id."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    keyid = create_key(path, passphrase=passphrase, name=name, identity=identity)
    store_path = trust_path(state_dir)
    store = TrustStore.load(store_path) if store_path.exists() else TrustStore.empty(store_path)
    now = utc_now()
    store.add_key(
        public_key_pem=Path(str(path) + ".pub").read_text(encoding="ascii"),
        name=name,
        identity=identity,
        roles=roles,
        valid_from=now - timedelta(minutes=5),
        valid_until=now + timedelta(days=valid_days),
        throwaway=throwaway,
    )
    store.save()
    return keyid


def describe_trust_store(state_dir: Path) -> str:
    path = trust_path(state_dir)
    if not path.exists():
        return f"no trust store at {path}"
    store = TrustStore.load(path)
    lines = [f"trust store {path} (sha256 {store.digest})"]
    for entry in store.keys.values():
        flags = " THROWAWAY" if entry.throwaway else ""
        revoked = f" revoked {entry.revoked_at}" if entry.revoked_at else ""
        lines.append(
            f"  {entry.keyid[:16]}  {entry.name:24} {','.join(entry.roles):28} "
            f"{entry.valid_from} .. {entry.valid_until}{revoked}{flags}"
        )
    return "\n".join(lines)
