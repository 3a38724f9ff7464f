"""OQ self check of the browser review's security (VQ-65, VQ-66), in process on a scratch
SQLite database: failed logins lock a user id in the database, so the right password is then
refused too; a key sealed for a browser user that no trust-admin has signed into the trust
store does not sign, and the bundle is left as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qualification.errors import TrustError
from qualification.evidence.reader import read_bundle
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch

WANT = {"right_password_after_failures": "refused: locked",
        "unsigned_key_signs": "refused: not in the trust store", "signatures_after": 0}
_USER = "selftest.reviewer"
_PASSWORD = "selftest password, never used elsewhere"
_FAILURES = 3


def _lockout_and_unsigned_key(scratch: Callable[[], Scratch]) -> Outcome:
    import sqlalchemy as sa

    from qualification.review.esign import sign_bundle
    from qualification.server import db
    from qualification.server.web.accounts import add_user, attempt_login, open_key
    from qualification.server.web.settings import WebSettings

    s = scratch()
    url = db.sqlite_url(s.root / "web-selftest.db")
    db.upgrade(url)
    engine = db.make_engine(url)
    got: dict[str, Any] = {}
    try:
        settings = WebSettings(lockout_failures=_FAILURES)
        add_user(engine, _USER, "Selftest Reviewer", ["reviewer"], _PASSWORD)
        for i in range(_FAILURES):
            attempt_login(engine, settings, _USER, f"wrong password {i}", "selftest")
        login = attempt_login(engine, settings, _USER, _PASSWORD, "selftest")
        got["right_password_after_failures"] = (
            "refused: locked" if not login.ok and login.why.startswith("locked") else
            f"{'accepted' if login.ok else 'refused'}: {login.why}")
        with db.read_tx(engine) as conn:
            row = conn.execute(sa.select(db.web_users.c.keyid, db.web_users.c.sealed_key)
                               .where(db.web_users.c.user_id == _USER)).one()
    finally:
        engine.dispose()
    signer = open_key(bytes(row.sealed_key), _PASSWORD, _USER, row.keyid)
    bundle = s.bundle()
    if signer is None:
        got["unsigned_key_signs"] = "the sealed key did not open with its password"
    else:
        try:
            sign_bundle(bundle, signer, s.trust, "reviewed", "selftest")
            got["unsigned_key_signs"] = "signed"
        except TrustError as exc:
            got["unsigned_key_signs"] = ("refused: not in the trust store"
                                         if "not in the trust store" in exc.message
                                         else f"refused: {exc.one_line()}")
    got["signatures_after"] = len(read_bundle(bundle).signatures)
    return Outcome(got == WANT, got)


def web_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: the browser review's lockout and its refusal of an unsigned key."""
    from qualification.errors import missing_extra

    why: str | None = None
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        found = missing_extra(exc)
        why = found.one_line() if found else f"the server extra is not installed: {exc}"
    return [
        SelfCheck(
            "ST-OQ-27",
            "after repeated failed logins the right password is refused (lockout held in the "
            "database); a browser user's key no trust-admin signed into the trust store "
            "cannot sign a run",
            "OQ",
            "VQ-65",
            f"a scratch SQLite server database: a reviewer account, {_FAILURES} failed logins "
            "then the right one; the account's sealed key opened with its password signs a "
            "scratch run as reviewed through a trust store that does not hold it",
            {"op": "equals", "value": WANT},
            lambda: _lockout_and_unsigned_key(scratch),
            not_executed=why,
        )
    ]
