"""The signed-in person's own account: changing the password (which seals the signing key
again under the new one), so only its owner knows it after the administrator's first one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qualification.errors import BadInputError
from qualification.server.web import WebConfig
from qualification.server.web.accounts import change_password
from qualification.server.web.guard import (
    audit,
    check_csrf,
    client_address,
    read_form,
    render,
    require_user,
)


def routes(config: WebConfig) -> list[Route]:
    """``/account/password``: any signed-in person, for their own account only."""

    async def password(request: Request) -> Response:
        user = await require_user(request, None)
        if isinstance(user, Response):
            return user
        if request.method == "GET":
            return render(request, "password.html", message="", done=False)
        form = await read_form(request)
        check_csrf(request, form)
        new = form.get("new", "")
        if new != form.get("confirm", ""):
            return render(request, "password.html", status=422, done=False,
                          message="The new password and its confirmation differ.")
        try:
            outcome = await run_in_threadpool(
                change_password, config.server.engine, config.settings, user.user_id,
                form.get("current", ""), new, client_address(request))
        except BadInputError as exc:
            return render(request, "password.html", status=422, done=False,
                          message=exc.message)
        if not outcome.ok:
            await audit(request, "password", "refused", outcome.why)
            return render(request, "password.html", status=403, done=False,
                          message="The current password is wrong or the account is locked.")
        await audit(request, "password", "ok", "password changed; signing key sealed again")
        return render(request, "password.html", message="", done=True)

    return [Route("/account/password", password, methods=["GET", "POST"])]
