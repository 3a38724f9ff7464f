"""E-signatures in the browser (Part 11), made exactly as ``vqual sign`` makes them.

At the moment of signing the person types both components again: the user id and the
password. The password is judged like a login (it counts toward the lockout), then unseals
the user's Ed25519 key (:mod:`.accounts`); the held bundle is copied, signed with
:func:`qualification.review.esign.sign_bundle` (the same roles, separation of duties and
verification as ``vqual sign``, through the trust store the pinned root vouches for, so a key
no trust-admin has signed in is refused) and taken back through the server's own push, which
verifies it again, appends the ``signature`` record to the stored bundle and logs it in the
transparency log. ``vqual pull`` then ``vqual verify`` accept it offline.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qualification.errors import VqualError
from qualification.server import db
from qualification.server.files import pack
from qualification.server.service import EvidenceServer, Refused
from qualification.server.web.accounts import attempt_login, open_key
from qualification.server.web.settings import WebSettings
from qualification.signing import Ed25519Signer

#: The browser role each meaning needs (the trust store's role is checked by sign_bundle).
MEANING_WEB_ROLE = {"reviewed": "reviewer", "approved": "approver", "rejected": "approver"}


#: Approving and rejecting are one decision: a person makes it once per run.
DECISION = {"approved": "decision", "rejected": "decision"}


@dataclass(frozen=True)
class Signed:
    """One signature a held run carries."""

    meaning: str
    keyid: str
    name: str
    time: str

    @property
    def when(self) -> str:
        return self.time[:19].replace("T", " ") + " UTC"


def signed_by(server: EvidenceServer, change_id: str, run_id: str) -> list[Signed]:
    """Each signature the held run carries, oldest first."""
    from qualification.evidence.reader import read_bundle

    bundle = read_bundle(server.store / change_id / run_id)
    return [Signed(str(s.data.get("meaning")), s.keyid, str(s.data.get("name")), s.time)
            for s in bundle.signatures]


def user_keyid(server: EvidenceServer, user_id: str) -> str | None:
    with db.read_tx(server.engine) as conn:
        found = conn.execute(sa.select(db.web_users.c.keyid)
                             .where(db.web_users.c.user_id == user_id)).scalar()
    return None if found is None else str(found)


def repeat_refusal(server: EvidenceServer, info: dict[str, Any], keyid: str | None,
                   meaning: str) -> str | None:
    """Why signing ``info``'s run with ``meaning`` by ``keyid`` would repeat a signature
    (the same meaning, or a second decision), or sign a run approved already; else None.
    The line says who signed when, so the dialog can show it instead of its form."""
    signed = signed_by(server, info["change_id"], info["run_id"])
    approved = [s for s in signed if s.meaning == "approved"]
    if approved and meaning != "reviewed":
        return (f"run {info['run_id']} is approved already, by {approved[0].name} at "
                f"{approved[0].when}; it takes no further decision")
    mine = [s for s in signed if s.keyid == keyid
            and DECISION.get(s.meaning, s.meaning) == DECISION.get(meaning, meaning)]
    if mine:
        return (f"you signed run {info['run_id']} as {mine[0].meaning} already, as "
                f"{mine[0].name} at {mine[0].when}; a person signs once")
    return None


class SignRefused(Exception):
    """Signing was refused; ``message`` says why (shown and audited)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class WebSignature:
    run_id: str
    seal: str
    meaning: str
    name: str
    keyid: str
    seq: int
    log_indexes: list[int]


def sign_held_run(server: EvidenceServer, settings: WebSettings, session_user: str,
                  typed_user: str, password: str, run_id: str, meaning: str,
                  comment: str | None, address: str) -> WebSignature:
    """Sign the held run ``run_id`` with ``meaning`` for the signed-in ``session_user``.

    Raises:
        SignRefused: the typed user id is not the session's, the password is wrong or the
            account locked, the account has no key, or ``vqual sign``'s checks refuse it
            (untrusted key, wrong role, own run, bundle not valid).
    """
    if meaning not in MEANING_WEB_ROLE:
        raise SignRefused(f"unknown meaning {meaning[:40]!r}", 422)
    if typed_user != session_user:
        raise SignRefused("the user id typed is not the signed-in user's")
    login = attempt_login(server.engine, settings, typed_user, password, address)
    if not login.ok:
        raise SignRefused(f"signature not made: {login.why}")
    with db.read_tx(server.engine) as conn:
        row = conn.execute(sa.select(db.web_users.c.keyid, db.web_users.c.sealed_key)
                           .where(db.web_users.c.user_id == session_user)).first()
    try:
        info = server.run_info(run_id)
    except Refused as exc:
        raise SignRefused(exc.message, exc.status) from None
    again = repeat_refusal(server, info, None if row is None else row.keyid, meaning)
    if again is not None:
        raise SignRefused(again, 409)
    if row is None or row.sealed_key is None or row.keyid is None:
        raise SignRefused(f"{session_user} has no signing key on this server; sign with "
                          "vqual sign and push the bundle again")
    signer = open_key(bytes(row.sealed_key), password, session_user, row.keyid)
    if signer is None:
        raise SignRefused("the signing key does not open with this password")
    return _sign_copy(server, session_user, signer, run_id, meaning, comment)


def _sign_copy(server: EvidenceServer, who: str, signer: Ed25519Signer, run_id: str, meaning: str,
               comment: str | None) -> WebSignature:
    from qualification.review.esign import sign_bundle
    from qualification.review.pinned import approvable, choose_trust
    try:
        info = server.run_info(run_id)
    except Refused as exc:
        raise SignRefused(exc.message, exc.status) from None
    work = Path(tempfile.mkdtemp(prefix="vqual-websign-", dir=server.incoming))
    try:
        copy = work / info["run_id"]
        shutil.copytree(server.store / info["change_id"] / info["run_id"], copy)
        try:
            choice = choose_trust(server.config.state_dir)
            approvable(choice)
            done = sign_bundle(copy, signer, choice.store, meaning, comment)
            out = server.push(who, pack(copy))
        except Refused as exc:
            raise SignRefused(f"the signed bundle was not taken: {exc.message}", exc.status) \
                from None
        except VqualError as exc:
            raise SignRefused(exc.one_line()) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return WebSignature(info["run_id"], info["seal"], meaning, done.name, done.keyid, done.seq,
                        out.log_indexes)
