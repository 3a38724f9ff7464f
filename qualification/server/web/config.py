"""What the browser pages are built over: the server and the security settings."""

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
