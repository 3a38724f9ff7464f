"""The browser review: pages for people, behind accounts, sessions, CSRF and roles.

``routes(config)`` is what the server app mounts: each page module's ``routes(config)``, in
order (a new page module is imported here and added to the list). Every page handler goes
through :mod:`.guard` (``require_user``, ``check_csrf``, ``render``). Accounts and their sealed
signing keys: :mod:`.accounts`; sessions: :mod:`.sessions`; e-signatures: :mod:`.signing`.
"""

from __future__ import annotations

from starlette.routing import Route

from qualification.server.web import account, pages
from qualification.server.web.config import WebConfig
from qualification.server.web.settings import WebSettings


def routes(config: WebConfig) -> list[Route]:
    """Every browser route, each guarded by its page module."""
    return [*pages.routes(config), *account.routes(config)]


__all__ = ["WebConfig", "WebSettings", "routes"]
