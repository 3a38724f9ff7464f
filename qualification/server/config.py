"""Where the server keeps things and what it accepts: one object, from the state directory.

The embedded default is ``<state>/server/``: ``server.db`` (SQLite) and ``store/`` (the
bundles). ``--database-url`` or ``VQUAL_SERVER_DATABASE_URL`` chooses PostgreSQL instead
(``postgresql+psycopg://...``); the store stays a directory (a shared filesystem for several
hosts). The log's checkpoints are signed with the key at ``--log-key`` (default
``<state>/keys/log.pem``, made by ``vqual keys create --role log --service``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qualification.server.db import sqlite_url
from qualification.signing import TrustStore

#: Largest request body accepted (a pushed bundle's tar); ``--max-body``.
DEFAULT_MAX_BODY = 256 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    state_dir: Path
    database_url: str
    store: Path
    log_key: Path
    max_body: int = DEFAULT_MAX_BODY

    @classmethod
    def from_state(
        cls, state_dir: Path, *, database_url: str | None = None, log_key: Path | None = None,
        max_body: int | None = None,
    ) -> ServerConfig:
        base = state_dir / "server"
        url = database_url or os.environ.get("VQUAL_SERVER_DATABASE_URL") or ""
        if not url:
            base.mkdir(parents=True, exist_ok=True)
            url = sqlite_url(base / "server.db")
        return cls(
            state_dir=state_dir,
            database_url=url,
            store=base / "store",
            log_key=log_key or state_dir / "keys" / "log.pem",
            max_body=max_body or DEFAULT_MAX_BODY,
        )


def load_trust(state_dir: Path) -> TrustStore:
    """The trust store pushed bundles, voids and checkpoints are judged with.

    The one place the server loads trust, as ``vqual verify`` does: the store the pinned
    trust root vouches for, each record judged by the trust version in force at its time
    (``--trust-root`` of ``vqual serve``, ``$VQUAL_TRUST_ROOT``, ``/etc/vqual/trust-root.yaml``),
    or legacy trust when asked for (``--legacy-trust``, ``$VQUAL_LEGACY_TRUST=1``).

    Raises:
        BadInputError: no pin and legacy trust not asked for.
        TrustError: the store is unsigned, broken or not vouched for by the pinned root.
    """
    from qualification.review.pinned import choose_trust

    return choose_trust(state_dir).store
