"""Browser sessions, held in the database so every worker sees the same ones.

The cookie carries 32 random bytes; the database keeps only their SHA-256, the user, the
session's CSRF token, when it began and when it was last used. A session ends at logout (the
row is marked, so a copied cookie is refused afterwards), after ``idle_minutes`` without a
request, or ``absolute_minutes`` after login, whichever comes first. ``last_seen`` is written
at most once every 30 seconds, so idle expiry is exact to within that.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qualification.server import db
from qualification.server.web.settings import WebSettings
from qualification.timeutil import parse_utc, utc_now, utc_text

_TOUCH_SECONDS = 30


@dataclass(frozen=True)
class Session:
    token_hash: str
    user_id: str
    printed_name: str
    roles: tuple[str, ...]
    sites: tuple[str, ...]
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(engine: Engine, user_id: str, address: str) -> str:
    """A new session for ``user_id``; returns the cookie value (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    now = utc_text(utc_now())
    with db.write_tx(engine) as conn:
        conn.execute(db.web_sessions.insert().values(
            token_hash=_hash(token), user_id=user_id, csrf=secrets.token_urlsafe(32),
            created=now, last_seen=now, ended=None, address=address[:64]))
    return token


def end_session(engine: Engine, token: str) -> str | None:
    """End the session of ``token`` (logout); returns its user id, None if it was not open."""
    s = db.web_sessions
    with db.write_tx(engine) as conn:
        row = conn.execute(sa.select(s.c.user_id).where(
            s.c.token_hash == _hash(token), s.c.ended.is_(None))).first()
        if row is None:
            return None
        conn.execute(s.update().where(s.c.token_hash == _hash(token))
                     .values(ended=utc_text(utc_now())))
    return str(row.user_id)


def lookup(engine: Engine, token: str, settings: WebSettings) -> tuple[Session | None, str]:
    """The open session of ``token``, or None and why not (for the audit)."""
    if not token or len(token) > 100:
        return None, "no session"
    s, u = db.web_sessions, db.web_users
    with db.read_tx(engine) as conn:
        row = conn.execute(
            sa.select(s, u.c.printed_name, u.c.roles, u.c.sites, u.c.disabled)
            .join(u, u.c.user_id == s.c.user_id).where(s.c.token_hash == _hash(token))
        ).first()
    if row is None:
        return None, "unknown session"
    if row.ended is not None:
        return None, f"session of {row.user_id} ended at {row.ended} (logged out or expired)"
    now = utc_now()
    idle = now - parse_utc(row.last_seen) > timedelta(minutes=settings.idle_minutes)
    old = now - parse_utc(row.created) > timedelta(minutes=settings.absolute_minutes)
    if row.disabled is not None or idle or old:
        with db.write_tx(engine) as conn:
            conn.execute(s.update().where(s.c.token_hash == row.token_hash, s.c.ended.is_(None))
                         .values(ended=utc_text(now)))
        why = "account disabled" if row.disabled else "idle" if idle else "absolute lifetime"
        return None, f"session of {row.user_id} expired ({why})"
    if now - parse_utc(row.last_seen) > timedelta(seconds=_TOUCH_SECONDS):
        with db.write_tx(engine) as conn:
            conn.execute(s.update().where(s.c.token_hash == row.token_hash)
                         .values(last_seen=utc_text(now)))
    return Session(row.token_hash, row.user_id, row.printed_name, tuple(row.roles.split()),
                   tuple(row.sites.split()), row.csrf), ""
