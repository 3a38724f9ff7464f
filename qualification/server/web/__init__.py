"""The browser review: pages for people, behind accounts, sessions, CSRF and roles.

The server app mounts each page module's ``routes(config)`` (:mod:`.pages`, :mod:`.account`,
:mod:`.review_pages`; in ``qualification.server.app.web_routes``, not here, so no page module
and this package import each other), and every page handler goes through :mod:`.guard`
(``require_user``, ``check_csrf``, ``render``). Accounts and their sealed signing keys:
:mod:`.accounts`; sessions: :mod:`.sessions`; e-signatures: :mod:`.signing`.
"""

from __future__ import annotations

from qualification.server.web.config import WebConfig
from qualification.server.web.settings import WebSettings

__all__ = ["WebConfig", "WebSettings"]
