"""The browser review: pages for people, behind accounts, sessions, CSRF and roles.

The server app mounts each page module's ``routes(config)`` (:mod:`.pages`, :mod:`.account`,
:mod:`.review_pages`; imported there, not here, so no page module and this package import
each other), and every page handler goes through :mod:`.guard` (``require_user``,
``check_csrf``, ``render``). Accounts and their sealed signing keys: :mod:`.accounts`;
sessions: :mod:`.sessions`; e-signatures: :mod:`.signing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qualification.server.web.settings import WebSettings

if TYPE_CHECKING:
    from qualification.server.service import EvidenceServer


@dataclass(frozen=True)
class WebConfig:
    """What the pages need: the server (database, store, audit) and the security settings."""

    server: EvidenceServer
    settings: WebSettings = field(default_factory=WebSettings)


__all__ = ["WebConfig", "WebSettings"]
