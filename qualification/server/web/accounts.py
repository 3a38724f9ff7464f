"""People's accounts for the browser review: password hashes, sealed signing keys, logins.

A password is kept only as its Argon2id hash (PHC string; memory-hard, RFC 9106, with
OWASP's minimum parameters: 19 MiB, 2 passes, 1 lane) from ``cryptography``. A user's Ed25519
signing key is kept sealed: AES-256-GCM under a key Argon2id derives from the password with a
salt of its own, the user id and key id bound in as associated data, so the server can use the
key only at the moment the user types the password again, and a sealed key moved to another
account does not open. The key counts for signing only once a trust-admin has signed a trust
store version holding its public key (``vqual trust sign``); the server holds no trust-admin
key.

Login attempts are rows of the database every worker shares: an address that tries more than
``logins_per_minute`` is refused for the rest of the minute, and ``lockout_failures`` failed
attempts of one user id within ``lockout_minutes`` (since its last success) lock it until they
age out; the count and the new attempt are taken under the database's write lock, so attempts
spread over workers are counted once each.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from sqlalchemy.engine import Engine

from qualification.errors import BadInputError
from qualification.server import db
from qualification.server.web.settings import WebSettings
from qualification.signing import Ed25519Signer
from qualification.timeutil import utc_now, utc_now_text, utc_text

#: Roles of people in the browser: a reviewer signs "reviewed", an approver "approved" or
#: "rejected", an admin manages accounts and reads the audit table.
ROLES = ("reviewer", "approver", "admin")
_USER_ID = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_MIN_PASSWORD = 12
_MAX_PASSWORD = 1024
_SEAL_MAGIC = b"vqk1"


def _kdf(salt: bytes) -> Argon2id:
    return Argon2id(salt=salt, length=32, iterations=2, lanes=1, memory_cost=19456)


def hash_password(password: str) -> str:
    return _kdf(os.urandom(16)).derive_phc_encoded(password.encode("utf-8"))


def password_matches(password: str, phc: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode("utf-8"), phc)
    except (InvalidKey, ValueError):
        return False
    return True


#: Checked against when the user id is unknown, so an unknown id costs what a known one does.
_DUMMY_HASH = hash_password("not-a-password-of-anyone")


def seal_key(key: Ed25519PrivateKey, password: str, user_id: str, keyid: str) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    secret = _kdf(salt).derive(password.encode("utf-8"))
    box = AESGCM(secret).encrypt(nonce, raw, f"{user_id}\n{keyid}".encode())
    return _SEAL_MAGIC + salt + nonce + box


def _unseal(sealed: bytes, password: str, user_id: str, keyid: str) -> Ed25519PrivateKey | None:
    if not sealed.startswith(_SEAL_MAGIC) or len(sealed) < 4 + 16 + 12 + 48:
        return None
    salt, nonce, box = sealed[4:20], sealed[20:32], sealed[32:]
    secret = _kdf(salt).derive(password.encode("utf-8"))
    try:
        raw = AESGCM(secret).decrypt(nonce, box, f"{user_id}\n{keyid}".encode())
    except InvalidTag:
        return None
    key = Ed25519PrivateKey.from_private_bytes(raw)
    return key if Ed25519Signer(key).keyid == keyid else None


def open_key(sealed: bytes, password: str, user_id: str, keyid: str) -> Ed25519Signer | None:
    """The signer sealed in ``sealed``, or None when the password (or binding) is wrong."""
    key = _unseal(sealed, password, user_id, keyid)
    return None if key is None else Ed25519Signer(key)


def check_password_text(password: str) -> None:
    """Raises BadInputError for a password too short or too long."""
    if not _MIN_PASSWORD <= len(password) <= _MAX_PASSWORD:
        raise BadInputError(f"a password has {_MIN_PASSWORD} to {_MAX_PASSWORD} characters")


@dataclass(frozen=True)
class NewUser:
    user_id: str
    keyid: str
    public_pem: str


def add_user(engine: Engine, user_id: str, printed_name: str, roles: list[str],
             password: str, sites: list[str] | None = None) -> NewUser:
    """Create an account with a fresh Ed25519 key sealed under ``password``.

    The key's public half (returned) goes into the trust store with the person's roles and
    counts once a trust-admin signs that version.

    Raises:
        BadInputError: a bad user id, printed name, role or password, or the id is taken.
    """
    if not _USER_ID.match(user_id):
        raise BadInputError(f"user id {user_id!r}: lower-case letters, digits, . _ @ - "
                            "(at most 64)")
    name = printed_name.strip()
    if not name or len(name) > 128 or any(ord(c) < 32 for c in name):
        raise BadInputError("printed name: 1 to 128 printable characters")
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise BadInputError(f"roles must be among {', '.join(ROLES)}: {' '.join(roles)}")
    check_password_text(password)
    key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(key)
    row = {"user_id": user_id, "printed_name": name, "roles": " ".join(sorted(set(roles))),
           "sites": " ".join(sites or []), "password_hash": hash_password(password),
           "keyid": signer.keyid, "sealed_key": seal_key(key, password, user_id, signer.keyid),
           "created": utc_now_text(), "disabled": None}
    with db.write_tx(engine) as conn:
        taken = conn.execute(sa.select(db.web_users.c.user_id)
                             .where(db.web_users.c.user_id == user_id)).first()
        if taken is not None:
            raise BadInputError(f"user {user_id!r} exists")
        conn.execute(db.web_users.insert().values(**row))
    return NewUser(user_id, signer.keyid, signer.public_pem())


def disable_user(engine: Engine, user_id: str) -> None:
    """Disable an account and end its sessions (the row stays: it is history)."""
    now = utc_now_text()
    with db.write_tx(engine) as conn:
        done = conn.execute(db.web_users.update().where(
            db.web_users.c.user_id == user_id, db.web_users.c.disabled.is_(None))
            .values(disabled=now))
        if done.rowcount != 1:
            raise BadInputError(f"no active user {user_id!r}")
        conn.execute(db.web_sessions.update().where(
            db.web_sessions.c.user_id == user_id, db.web_sessions.c.ended.is_(None))
            .values(ended=now))


@dataclass(frozen=True)
class Login:
    """The outcome of a login attempt: ``ok``, or ``why`` it was refused (for the audit)."""

    ok: bool
    why: str
    throttled: bool = False


def _window_start(minutes: int) -> str:
    return utc_text(utc_now() - timedelta(minutes=minutes))


def attempt_login(engine: Engine, settings: WebSettings, user_id: str, password: str,
                  address: str) -> Login:
    """Judge one login attempt; every attempt is recorded, refused ones as failures."""
    user_id = user_id[:64]
    t = db.web_logins
    with db.write_tx(engine) as conn:
        recent = conn.execute(sa.select(sa.func.count()).select_from(t).where(
            t.c.address == address[:64], t.c.time > _window_start(1))).scalar_one()
        last_ok = conn.execute(sa.select(sa.func.max(t.c.time)).where(
            t.c.user_id == user_id, t.c.ok.is_(True))).scalar_one()
        since = max(_window_start(settings.lockout_minutes), last_ok or "")
        failures = conn.execute(sa.select(sa.func.count()).select_from(t).where(
            t.c.user_id == user_id, t.c.ok.is_(False), t.c.time > since)).scalar_one()
        attempt = conn.execute(t.insert().values(time=utc_now_text(), user_id=user_id,
                                                 address=address[:64], ok=False))
        attempt_id = attempt.inserted_primary_key[0] if attempt.inserted_primary_key else None
        row = conn.execute(sa.select(db.web_users).where(
            db.web_users.c.user_id == user_id)).first()
    if recent >= settings.logins_per_minute:
        return Login(False, f"rate limit: {recent} logins from {address} within a minute", True)
    if failures >= settings.lockout_failures:
        return Login(False, f"locked: {failures} failed logins within "
                     f"{settings.lockout_minutes} minutes", True)
    if row is None:
        password_matches(password, _DUMMY_HASH)
        return Login(False, "unknown user id")
    if not password_matches(password, row.password_hash):
        return Login(False, "wrong password")
    if row.disabled is not None:
        return Login(False, "account disabled")
    with db.write_tx(engine) as conn:
        conn.execute(t.update().where(t.c.id == attempt_id).values(ok=True))
    return Login(True, "")


def change_password(engine: Engine, settings: WebSettings, user_id: str, current: str,
                    new: str, address: str) -> Login:
    """Set a new password: judged like a login with the current one (it counts toward the
    lockout), then the hash is replaced and the signing key sealed again under the new one.

    Raises:
        BadInputError: the new password is too short or too long.
    """
    check_password_text(new)
    login = attempt_login(engine, settings, user_id, current, address)
    if not login.ok:
        return login
    with db.read_tx(engine) as conn:
        row = conn.execute(sa.select(db.web_users.c.keyid, db.web_users.c.sealed_key)
                           .where(db.web_users.c.user_id == user_id)).one()
    values: dict[str, object] = {"password_hash": hash_password(new)}
    if row.sealed_key is not None and row.keyid is not None:
        key = _unseal(bytes(row.sealed_key), current, user_id, row.keyid)
        if key is None:
            return Login(False, "the signing key does not open with the current password")
        values["sealed_key"] = seal_key(key, new, user_id, row.keyid)
    with db.write_tx(engine) as conn:
        conn.execute(db.web_users.update().where(db.web_users.c.user_id == user_id)
                     .values(**values))
    return Login(True, "")
