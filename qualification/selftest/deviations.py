"""OQ self check of deviation approval in the browser (ST-OQ-33, VQ-82), in process on a
scratch SQLite server: a deviation raised by an approver's own account is pushed, and that
approver's browser approval (the right user id and password typed again) is refused because
the raiser may not approve; no waiver is held afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch

WANT = {"raiser_approves": "refused: raised or owns", "waivers_held": 0}
_USER = "selftest.approver"
_NAME = "Selftest Approver"
_PASSWORD = "selftest password, never used elsewhere"
_CHANGE = "SELFTEST-DEV"


def _deviation_push() -> bytes:
    dev = {"id": "DEV-SELFTEST", "test_id": "T-1", "target": "t",
           "justification": "selftest: raised by the approver who then tries to approve it",
           "expiry": "2999-01-01T00:00:00.000000Z", "owner": "Selftest Owner",
           "raised_by": _USER}
    return json.dumps({"change_id": _CHANGE, "deviations": [dev]}).encode("utf-8")


def raiser_may_not_approve(root: Path) -> Outcome:
    from qualification.selftest.server import _pinned, _state
    from qualification.server import db
    from qualification.server.config import ServerConfig
    from qualification.server.deviations import held_deviations, layout_json, push_deviations
    from qualification.server.service import EvidenceServer
    from qualification.server.web.accounts import add_user
    from qualification.server.web.deviation_pages import approve_held
    from qualification.server.web.guard import WebUser
    from qualification.server.web.settings import WebSettings
    from qualification.server.web.signing import SignRefused

    state, pin, _ = _state(root)
    got: dict[str, Any] = {}
    with _pinned(pin):
        config = ServerConfig.from_state(state)
        db.upgrade(config.database_url)
        server = EvidenceServer(config)
        try:
            add_user(server.engine, _USER, _NAME, ["approver"], _PASSWORD)
            push_deviations(server, "selftest", _deviation_push())
            (held,) = held_deviations(server, _CHANGE)
            try:
                approve_held(server, WebSettings(), WebUser(_USER, _NAME, ("approver",)), _USER,
                             _PASSWORD, held, "selftest", "selftest")
                got["raiser_approves"] = "approved"
            except SignRefused as exc:
                got["raiser_approves"] = ("refused: raised or owns"
                                          if "raised or owns" in exc.message
                                          else f"refused: {exc.message}")
            got["waivers_held"] = len(layout_json(server, _CHANGE)[1])
        finally:
            server.close()
    return Outcome(got == WANT, got)


def deviation_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: a deviation's raiser cannot approve it in the browser."""
    from qualification.errors import missing_extra

    why: str | None = None
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as exc:
        found = missing_extra(exc)
        why = found.one_line() if found else f"the server extra is not installed: {exc}"
    return [
        SelfCheck(
            "ST-OQ-33",
            "a deviation approved in the browser by the account that raised it is refused "
            "(separation of duties), and no waiver is held",
            "OQ",
            "VQ-82",
            "a scratch SQLite server with a pinned root and a log key; an approver account; "
            "a deviation raised by that account pushed; its browser approval with the right "
            "user id and password typed again",
            {"op": "equals", "value": WANT},
            lambda: raiser_may_not_approve(scratch().root / "deviations"),
            not_executed=why,
        )
    ]
