"""The HTTP API (Starlette): authentication, authorization per route, size limits.

Every route but ``/api/v1/health`` needs ``Authorization: Bearer <token>`` of a service
account (:mod:`.tokens`); each route names the role it needs (an admin has all). Refusals are
JSON ``{"error": ..., "problems": [...]}`` with the status that says why; unauthenticated and
unauthorized requests are audited like every push, pull and void.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from qualification.errors import BadInputError
from qualification.server import auditlog
from qualification.server.config import ServerConfig
from qualification.server.service import EvidenceServer, Refused
from qualification.server.settings import ALL_SITES
from qualification.server.tokens import Account, authenticate
from qualification.server.web import account, deviation_pages, pages, review_pages
from qualification.server.web.config import WebConfig
from qualification.server.web.guard import WebRefused, refused
from qualification.server.web.settings import WebSettings

Handler = Callable[[Request, Account], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
#: Largest body of anything but a push (a void document).
SMALL_BODY = 1 << 20


def _error(status: int, message: str, problems: list[str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "problems": problems or []}, status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _int(request: Request, name: str) -> int:
    text = request.query_params.get(name, "")
    if not text.isdigit() or len(text) > 12:
        raise Refused(422, f"query parameter {name} must be a non-negative integer")
    return int(text)


def _guarded(server: EvidenceServer, roles: tuple[str, ...], action: str,
             handler: Handler) -> Endpoint:
    """``handler`` behind authentication, the role check and the refusal edge (audited)."""

    async def endpoint(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        account = await run_in_threadpool(authenticate, server.engine, token) if token else None
        where = request.url.path[:200]
        if account is None:
            await run_in_threadpool(server.audit, "anonymous", action, "refused",
                                    f"not authenticated: {where}")
            return _error(401, "authentication required: a service-account token")
        if not any(account.may(role) for role in roles):
            await run_in_threadpool(server.audit, account.name, action, "refused",
                                    f"role {account.role} may not {action}: {where}")
            return _error(403, f"account {account.name} ({account.role}) may not {action}")
        try:
            return await handler(request, account)
        except Refused as exc:
            if action != "push":  # a push audits its own refusals
                await run_in_threadpool(server.audit, account.name, action, "refused",
                                        exc.message, exc.run_id)
            return _error(exc.status, exc.message, exc.problems)
        except BadInputError as exc:
            await run_in_threadpool(server.audit, account.name, action, "refused",
                                    exc.one_line())
            return _error(422, exc.one_line())

    return endpoint


def web_routes(config: WebConfig) -> list[Route]:
    """Every browser route, each guarded by its page module (mounted here: the page modules
    import the web package, so it does not import them)."""
    return [*pages.routes(config), *account.routes(config), *review_pages.routes(config),
            *deviation_pages.routes(config)]


def _audit_handler(server: EvidenceServer) -> Handler:
    """The audit trail's export, filtered (JSON or CSV; every site's runs, so only an
    account of every site reads it)."""

    async def audit(request: Request, account: Account) -> Response:
        if server.settings.per_site and ALL_SITES not in account.sites:
            # The trail names every site's runs: only an account of every site reads it.
            raise Refused(403, f"account {account.name} is not of every site ('*'); "
                          "the audit trail spans all sites")
        params = request.query_params
        wanted = auditlog.make_filter(params.get("from"), params.get("to"),
                                      params.get("account"), params.get("action"),
                                      params.get("run"), params.get("limit"))
        rows = await run_in_threadpool(auditlog.query, server.engine, wanted)
        if params.get("format", "json") == "csv":
            return PlainTextResponse(auditlog.to_csv(rows), media_type="text/csv")
        if params.get("format", "json") != "json":
            raise Refused(422, "format must be json or csv")
        return JSONResponse(rows)

    return audit


def _deviation_routes(api: str, route: Callable[[str, str, Handler], Endpoint]) -> list[Route]:
    """Deviations pushed by controllers and pulled back with their waivers
    (:mod:`.deviations`); each refusal is audited by the guard."""
    from qualification.server import deviations

    async def push(request: Request, account: Account) -> Response:
        body = await _body(request, SMALL_BODY)
        server = request.app.state.web.server
        return JSONResponse(await run_in_threadpool(deviations.push_deviations, server,
                                                    account.name, body, account))

    async def pull(request: Request, account: Account) -> Response:
        server = request.app.state.web.server
        return JSONResponse(await run_in_threadpool(
            deviations.pull_deviations, server, account.name, request.path_params["change"],
            account))

    return [Route(f"{api}/deviations", route("pusher", "deviation.push", push), methods=["POST"]),
            Route(f"{api}/deviations/{{change}}", route("reader", "deviation.pull", pull))]


def build_app(server: EvidenceServer, web: WebSettings | None = None) -> Starlette:
    """The application over ``server``: the API under ``/api/v1`` and the browser review
    (:mod:`qualification.server.web`) with ``web``'s security settings."""

    def route(roles: str, action: str, handler: Handler) -> Endpoint:
        return _guarded(server, tuple(roles.split()), action, handler)

    async def push(request: Request, account: Account) -> Response:
        try:
            body = await _body(request, server.config.max_body)
        except Refused as exc:
            await run_in_threadpool(server.audit, account.name, "push", "refused", exc.message)
            raise
        out = await run_in_threadpool(server.push, account.name, body, account)
        return JSONResponse(out.to_json(), status_code=201 if out.outcome == "stored" else 200)

    async def run_info(request: Request, account: Account) -> Response:
        ref = request.path_params["ref"]
        return JSONResponse(await run_in_threadpool(server.run_info, ref, account))

    async def bundle(request: Request, account: Account) -> Response:
        info, data = await run_in_threadpool(server.pull, account.name,
                                             request.path_params["ref"], account)
        return Response(data, media_type="application/x-tar",
                        headers={"X-Vqual-Run": info["run_id"], "X-Vqual-Seal": info["seal"]})

    async def void(request: Request, account: Account) -> Response:
        body = await _body(request, SMALL_BODY)
        out = await run_in_threadpool(server.void, account.name, request.path_params["ref"],
                                      body, account)
        return JSONResponse(out)

    async def checkpoint(request: Request, account: Account) -> Response:
        return Response(await run_in_threadpool(server.checkpoint), media_type="application/json")

    async def inclusion(request: Request, account: Account) -> Response:
        leaf = request.query_params.get("leaf_hash", "")
        proof = await run_in_threadpool(server.inclusion, leaf, _int(request, "size"))
        return JSONResponse(proof)

    async def consistency(request: Request, account: Account) -> Response:
        first, second = _int(request, "first"), _int(request, "second")
        return JSONResponse(await run_in_threadpool(server.consistency, first, second))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    api = "/api/v1"
    routes = [
        Route(f"{api}/health", health),
        Route(f"{api}/runs", route("pusher", "push", push), methods=["POST"]),
        # A pusher reads what is held (the run to void), but pulls nothing.
        Route(f"{api}/runs/{{ref}}", route("reader pusher", "read", run_info)),
        Route(f"{api}/runs/{{ref}}/bundle", route("reader", "pull", bundle)),
        Route(f"{api}/runs/{{ref}}/void", route("pusher", "void", void), methods=["POST"]),
        Route(f"{api}/log/checkpoint", route("reader", "read", checkpoint)),
        Route(f"{api}/log/inclusion", route("reader", "read", inclusion)),
        Route(f"{api}/log/consistency", route("reader", "read", consistency)),
        Route(f"{api}/audit", route("admin", "audit", _audit_handler(server))),
        *_deviation_routes(api, route),
    ]
    config = WebConfig(server, web or WebSettings())
    app = Starlette(routes=[*routes, *web_routes(config)],
                    exception_handlers={WebRefused: refused})
    app.state.web = config
    return app


def _config_from_env() -> ServerConfig:
    state = Path(os.environ["VQUAL_STATE_DIR"])
    max_body = os.environ.get("VQUAL_SERVER_MAX_BODY")
    log_key = os.environ.get("VQUAL_LOG_KEY")
    return ServerConfig.from_state(
        state, log_key=Path(log_key) if log_key else None,
        max_body=int(max_body) if max_body else None,
    )


def app_from_env() -> Starlette:
    """The factory uvicorn's workers call (``vqual serve`` puts the configuration in the
    environment): each worker opens its own engine on the same database and store."""
    return build_app(EvidenceServer(_config_from_env()), WebSettings.from_env())


__all__ = ["app_from_env", "build_app", "web_routes"]
