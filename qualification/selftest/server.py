"""``vqual selftest``'s check of the evidence server (ST-OQ-26, VQ-63).

An in-process server on SQLite in a scratch state directory (its own pinned root, executor
and log key) takes an honest bundle through its HTTP application, refuses the same kind of
bundle with a sealed file changed (422, "does not verify"), and has that refusal in its audit
trail. The application is called as an ASGI application, in this process, without a socket or
an HTTP client library.

It lives with the server (the selftest package sits below the server in the core's layers):
``vqual selftest`` adds :func:`server_checks` to the selftest's own when the server extra is
installed, and records the check not-executed, naming the extra, when it is not.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualification.evidence.bundle import BundleWriter
from qualification.evidence.kinds import CHECK_RESULT, RUN_START
from qualification.execution.recorder import add_renderings
from qualification.review.pinned import LEGACY_ENV
from qualification.review.trust_history import sign_trust_store
from qualification.selftest.base import Outcome, SelfCheck
from qualification.selftest.evidence import Scratch
from qualification.signing import Ed25519Signer, TrustStore
from qualification.signing.keys import create_key
from qualification.signing.trust_root import PIN_ENV, new_root, pin_yaml, write_pin

_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WANT = {"honest": 201, "tampered": 422, "audited": "refused: does not verify"}


def _asgi(app: Any, method: str, path: str, token: str, body: bytes) -> int:
    """The status ``app`` answers one request with, called in this process."""
    sent: list[dict[str, Any]] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("selftest", 80),
             "client": ("127.0.0.1", 1),
             "headers": [(b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/x-tar"),
                         (b"content-length", str(len(body)).encode())]}

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


@contextmanager
def _pinned(pin: Path) -> Iterator[None]:
    """The scratch pin in force for the check only (the server reads trust as `vqual verify`
    does, through the environment); the caller's environment is put back afterwards."""
    saved = {name: os.environ.get(name) for name in (PIN_ENV, LEGACY_ENV)}
    os.environ[PIN_ENV] = str(pin)
    os.environ.pop(LEGACY_ENV, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _state(root: Path) -> tuple[Path, Path, Ed25519Signer]:
    """A state directory whose signed trust store holds an executor and a log key, and the
    pin of the root that signed it (outside the state directory, as a pin must be)."""
    state = root / "state"
    (state / "keys").mkdir(parents=True)
    admin, executor = Ed25519Signer.generate(), Ed25519Signer.generate()
    log_key = state / "keys" / "log.pem"
    create_key(log_key, passphrase=None, name="Selftest log", identity="selftest-log")
    store = TrustStore.empty(state / "trust.yaml")
    for pem, name, role in ((admin.public_pem(), "Selftest root", "trust-admin"),
                            (executor.public_pem(), "Selftest executor", "executor"),
                            ((state / "keys" / "log.pem.pub").read_text(), "Selftest log",
                             "log")):
        store.add_key(public_key_pem=pem, name=name, identity=name.lower().replace(" ", "-"),
                      roles=[role], valid_from=_SINCE, throwaway=True)
    store.save()
    sign_trust_store(state, admin)
    pin = root / "pin" / "trust-root.yaml"
    write_pin(pin, pin_yaml([new_root(admin.public_pem(), "Selftest root", _SINCE)]))
    return state, pin, executor


def _bundle(root: Path, run_id: str, signer: Ed25519Signer) -> Path:
    w = BundleWriter.create(root / "ev", "SELFTEST-SERVER", run_id, signer, "selftest")
    w.append(RUN_START, {"mode": "selftest", "prev_run_seal": None,
                         "planned": [{"test_id": "T-1", "target": "t", "protocol": "IQ"}]})
    w.append(CHECK_RESULT, {"test_id": "T-1", "target": "t", "protocol": "IQ",
                            "verdict": "pass", "raw": None})
    add_renderings(w)
    w.seal({"pass": 1}, 1, 1, "pass")
    return w.path


def refuses_a_tampered_push(root: Path) -> Outcome:
    from qualification.server import db
    from qualification.server.app import build_app
    from qualification.server.config import ServerConfig
    from qualification.server.files import pack
    from qualification.server.service import EvidenceServer
    from qualification.server.tokens import create_token

    state, pin, executor = _state(root)
    honest = _bundle(root, "20000101T000000Z-honest", executor)
    tampered = _bundle(root, "20000101T000000Z-tamper", executor)
    report = tampered / "report.html"
    report.write_bytes(report.read_bytes() + b"<!-- edited after the seal -->")
    with _pinned(pin):
        config = ServerConfig.from_state(state)
        db.upgrade(config.database_url)
        server = EvidenceServer(config)
        try:
            token = create_token(server.engine, "selftest", "pusher")
            app = build_app(server)
            got: dict[str, Any] = {
                name: _asgi(app, "POST", "/api/v1/runs", token, pack(bundle))
                for name, bundle in (("honest", honest), ("tampered", tampered))}
            rows = [r for r in server.audit_rows() if r["action"] == "push"]
        finally:
            server.close()
    refused = [r for r in rows if r["outcome"] == "refused"]
    got["audited"] = ("refused: does not verify"
                      if len(refused) == 1 and refused[0]["detail"].startswith("does not verify")
                      else [f"{r['outcome']}: {r['detail'][:80]}" for r in rows])
    return Outcome(got == WANT, got)


def server_checks(scratch: Callable[[], Scratch]) -> list[SelfCheck]:
    """OQ: the evidence server refuses a tampered push and audits the refusal."""
    return [
        SelfCheck(
            "ST-OQ-26",
            "an in-process evidence server (SQLite) stores an honest bundle, refuses one with "
            "a sealed file changed, and audits the refusal",
            "OQ",
            "VQ-63",
            "a scratch state directory with a pinned root, an executor and a log key; two "
            "sealed runs pushed through the server's HTTP application called in process, "
            "the second with report.html changed after the seal; the audit trail read",
            {"op": "equals", "value": WANT},
            lambda: refuses_a_tampered_push(scratch().root / "server"),
        )
    ]


def unavailable_checks(missing: str) -> list[SelfCheck]:
    """ST-OQ-26 recorded not-executed: the server extra is not installed."""
    from qualification.selftest.base import never_run

    return [SelfCheck("ST-OQ-26", "the evidence server refuses a tampered push and audits it",
                      "OQ", "VQ-63", "not executed", {"op": "equals", "value": WANT},
                      never_run, not_executed=f"the evidence server needs {missing}, which is "
                      "not installed: pip install 'vqual[server]'")]
