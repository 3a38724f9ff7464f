"""The browser review: pages for people, behind accounts, sessions, CSRF and roles.

``routes(config)`` is what the server app mounts; each page module adds its own routes to
:data:`PAGE_MODULES`, and every page handler goes through :mod:`.guard` (``require_user``,
``check_csrf``, ``render``). Accounts and their sealed signing keys: :mod:`.accounts`;
sessions: :mod:`.sessions`; e-signatures: :mod:`.signing`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.routing import Route

from qualification.server.web.settings import WebSettings

if TYPE_CHECKING:
    from qualification.server.service import EvidenceServer

#: Modules with ``routes(config) -> list[Route]``, mounted in this order.
PAGE_MODULES = ("qualification.server.web.pages", "qualification.server.web.review_pages")


@dataclass(frozen=True)
class WebConfig:
    """What the pages need: the server (database, store, audit) and the security settings."""

    server: EvidenceServer
    settings: WebSettings = field(default_factory=WebSettings)


def routes(config: WebConfig) -> list[Route]:
    """Every browser route, each guarded by its page module."""
    found: list[Route] = []
    for name in PAGE_MODULES:
        found.extend(importlib.import_module(name).routes(config))
    return found


__all__ = ["PAGE_MODULES", "WebConfig", "WebSettings", "routes"]
