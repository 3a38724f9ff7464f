"""Builders for the evidence server's tests: a state directory with people's keys and a log
key in its trust store, sealed bundles written for real, and a configured server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from qualification.server import db
from qualification.server.config import ServerConfig
from qualification.server.service import EvidenceServer
from qualification.server.tokens import create_token
from qualification.signing import TrustStore
from qualification.signing.keys import create_key
from tests.trustroot_testlib import pin_state
from tests.unit.evidence.evidence_testlib import CHANGE, Keys, make_keys
from tests.unit.evidence.test_verify_agreement import real_run

__all__ = ["CHANGE", "ServerState", "make_state", "new_run", "start_server"]


@dataclass
class ServerState:
    state: Path
    keys: Keys
    log_key: Path
    evidence: Path


def make_state(base: Path) -> ServerState:
    """People's keys (executor, reviewer, approver) and a log service key, all trusted."""
    state = base / "state"
    state.mkdir(parents=True)
    keys = make_keys(state)
    log_key = state / "keys" / "log.pem"
    log_key.parent.mkdir()
    create_key(log_key, passphrase=None, name="Evidence log", identity="svc-log@example.com")
    trust = TrustStore.load(state / "trust.yaml")
    trust.add_key(public_key_pem=(state / "keys" / "log.pem.pub").read_text(),
                  name="Evidence log", identity="svc-log@example.com", roles=["log"],
                  valid_from=datetime(2020, 1, 1, tzinfo=UTC))
    trust.save()
    pin_state(state)  # pushed runs are judged through the pinned root, as `vqual verify` does
    keys.trust = TrustStore.load(state / "trust.yaml")
    return ServerState(state, keys, log_key, base / "evidence")


def new_run(st: ServerState, run_id: str, prev: str | None = None) -> Path:
    return real_run(st.evidence, st.keys, run_id, prev=prev)


def start_server(st: ServerState, url: str | None = None) -> tuple[EvidenceServer, dict[str, str]]:
    """A migrated server on ``url`` (default SQLite in the state directory) and a token per
    role (pusher, reader, admin)."""
    config = ServerConfig.from_state(st.state, database_url=url, log_key=st.log_key)
    db.upgrade(config.database_url)
    server = EvidenceServer(config)
    tokens = {role: create_token(server.engine, f"acct-{role}", role)
              for role in ("pusher", "reader", "admin")}
    return server, tokens


class InProcessClient:
    """The client side's interface (:class:`qualification.server.client.Client`) over the real
    application through Starlette's in-process transport, so the log checks run in unit tests
    against both databases; the integration tests use real HTTP."""

    def __init__(self, app: object, token: str, url: str = "http://vqual.test") -> None:
        from starlette.testclient import TestClient

        self.http = TestClient(app)  # type: ignore[arg-type]
        self.token = token
        self.url = url

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[bytes, dict[str, str]]:
        from qualification.server.client import ServerRefusedError

        got = self.http.request(method, "/api/v1" + path, content=body, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        if got.status_code >= 400:
            raise ServerRefusedError(f"server refused ({got.status_code}): {got.json()['error']}")
        return got.content, dict(got.headers)

    def json(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> object:
        import json

        return json.loads(self.request(method, path, body, content_type)[0])
