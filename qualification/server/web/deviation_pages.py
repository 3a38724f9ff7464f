"""Deviations in the browser: the held deviations of the user's sites, and their approval.

Approving is an e-signature like signing a run (:mod:`.signing`): the page shows what is
approved (change, deviation, test, target, justification, expiry, owner, who raised it, its
digest, the approver's printed name) and asks for the user id and password again; the password
counts as a login attempt and unseals the account's key, and the waiver is made by
:func:`qualification.review.deviations.approve_deviation`, the code of ``vqual deviation
approve`` (approver role in the trust store the pinned root vouches for, expiry, trusted time,
and that whoever raised or owns the deviation does not approve it), over the held deviations
laid out as a state directory. The waiver is held (:mod:`qualification.server.deviations`) and
``vqual deviation pull`` writes it where ``vqual deviation approve`` would have.
Separation of duties here too: only an approver; not whoever raised or owns it (user id or
printed name); not twice by the same person. Every approval and refusal is audited.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qualification.errors import VqualError
from qualification.evidence.records import utc_now
from qualification.review.deviations import Waiver, approve_deviation
from qualification.server import db
from qualification.server.deviation_files import write_layout
from qualification.server.deviations import (
    HeldDeviation,
    held_deviations,
    laid_out,
    layout_json,
    store_made_waiver,
)
from qualification.server.service import EvidenceServer
from qualification.server.web.accounts import attempt_login, open_key
from qualification.server.web.config import WebConfig
from qualification.server.web.guard import (
    WebRefused,
    WebUser,
    audit,
    check_csrf,
    client_address,
    read_form,
    redirect,
    render,
    require_user,
    web_config,
)
from qualification.server.web.settings import WebSettings
from qualification.server.web.signing import SignRefused


def visible_deviations(config: WebConfig, user: WebUser,
                       change: str | None = None) -> list[HeldDeviation]:
    per_site = config.server.settings.per_site
    return [h for h in held_deviations(config.server, change) if user.may_see(h.sites, per_site)]


def approval_refusal(held: HeldDeviation, user: WebUser, keyid: str | None) -> str | None:
    """Why ``user`` may not approve ``held`` before any password is judged (None: go on)."""
    raisers = held.deviation.raisers()
    if {user.user_id, user.printed_name} & raisers:
        return (f"{user.printed_name} ({user.user_id}) raised or owns deviation {held.id} "
                "and may not approve it")
    mine = [t for _, k, t in held.approvals if keyid is not None and k == keyid]
    if mine:
        when = mine[0][:19].replace("T", " ")
        return f"{user.printed_name} approved deviation {held.id} already, at {when} UTC"
    return None


def approve_held(server: EvidenceServer, settings: WebSettings, user: WebUser, typed_user: str,
                 password: str, held: HeldDeviation, comment: str | None,
                 address: str) -> Waiver:
    """Approve the held deviation ``held`` as ``user`` (who typed ``typed_user`` and
    ``password`` again), exactly as ``vqual deviation approve`` would.

    Raises:
        SignRefused: the typed user id is not the session's, the person raised or owns it or
            approved it already, the password is wrong or the account locked, the account has
            no key, or ``approve_deviation`` refuses (key untrusted or not an approver,
            raiser by identity, expired).
    """
    if typed_user != user.user_id:
        raise SignRefused("the user id typed is not the signed-in user's")
    with db.read_tx(server.engine) as conn:
        row = conn.execute(sa.select(db.web_users.c.keyid, db.web_users.c.sealed_key)
                           .where(db.web_users.c.user_id == user.user_id)).first()
    why = approval_refusal(held, user, None if row is None else row.keyid)
    if why is not None:
        raise SignRefused(why, 409 if "already" in why else 403)
    login = attempt_login(server.engine, settings, typed_user, password, address)
    if not login.ok:
        raise SignRefused(f"approval not made: {login.why}")
    if row is None or row.sealed_key is None or row.keyid is None:
        raise SignRefused(f"{user.user_id} has no signing key on this server; approve with "
                          "vqual deviation approve and push the deviations again")
    signer = open_key(bytes(row.sealed_key), password, user.user_id, row.keyid)
    if signer is None:
        raise SignRefused("the signing key does not open with this password")
    from qualification.review.pinned import approvable, choose_trust

    try:
        choice = choose_trust(server.config.state_dir)
        approvable(choice)
        with laid_out(server) as state:
            deviations, _ = layout_json(server, held.change_id)
            write_layout(state, held.change_id, deviations, [])
            waiver = approve_deviation(state, held.change_id, held.id, signer, choice.store,
                                       comment)
            store_made_waiver(server, state, held.change_id, waiver, user.user_id)
    except VqualError as exc:
        raise SignRefused(exc.one_line()) from None
    return waiver


async def _approver_of(request: Request) -> tuple[WebUser, HeldDeviation] | Response:
    user = await require_user(request, "approver")
    if isinstance(user, Response):
        return user
    config = web_config(request)
    change, dev_id = request.path_params["change_id"], request.path_params["deviation_id"]
    found = [h for h in await run_in_threadpool(visible_deviations, config, user, change[:64])
             if h.id == dev_id]
    if not found:
        raise WebRefused(404, f"no deviation {dev_id[:64]} of change {change[:64]} is held "
                         "for your sites", "read")
    return user, found[0]


def _context(held: HeldDeviation, user: WebUser, keyid: str | None) -> dict[str, Any]:
    return {"held": held, "state": held.status(utc_now()),
            "refusal": approval_refusal(held, user, keyid)}


def _keyid(server: EvidenceServer, user_id: str) -> str | None:
    with db.read_tx(server.engine) as conn:
        found = conn.execute(sa.select(db.web_users.c.keyid)
                             .where(db.web_users.c.user_id == user_id)).scalar()
    return None if found is None else str(found)


async def deviations_page(request: Request) -> Response:
    user = await require_user(request, None)
    if isinstance(user, Response):
        return user
    config = web_config(request)
    change = request.query_params.get("change") or None
    rows = await run_in_threadpool(visible_deviations, config, user, change)
    now = utc_now()
    return render(request, "deviations.html", rows=[(h, h.status(now)) for h in rows],
                  change=change or "", may_approve=user.has("approver"))


async def approve_page(request: Request) -> Response:
    got = await _approver_of(request)
    if isinstance(got, Response):
        return got
    user, held = got
    config = web_config(request)
    keyid = await run_in_threadpool(_keyid, config.server, user.user_id)
    if request.method == "GET":
        return render(request, "deviation.html", message="", **_context(held, user, keyid))
    form = await read_form(request)
    check_csrf(request, form)
    where = f"deviation {held.id} of {held.change_id}"
    try:
        waiver = await run_in_threadpool(
            approve_held, config.server, config.settings, user,
            form.get("user_id", "").strip().lower(), form.get("password", ""), held,
            form.get("comment") or None, client_address(request))
    except SignRefused as exc:
        await audit(request, "deviation.approve", "refused", f"{where}: {exc.message}")
        return render(request, "deviation.html", status=exc.status, message=exc.message,
                      **_context(held, user, keyid))
    await audit(request, "deviation.approve", "ok",
                f"{where} approved by {waiver.name} (key {waiver.keyid[:16]}), digest "
                f"{held.deviation.digest}, expires {held.deviation.expiry}: {waiver.file}")
    return redirect(f"/deviations?change={held.change_id}")


def routes(config: WebConfig) -> list[Route]:
    """``/deviations`` (any signed-in person, their sites) and the approval (approvers)."""
    return [
        Route("/deviations", deviations_page),
        Route("/deviations/{change_id}/{deviation_id}", approve_page, methods=["GET", "POST"]),
    ]


__all__ = ["approval_refusal", "approve_held", "routes", "visible_deviations"]
