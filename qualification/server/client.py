"""The client side: push, pull, void and the log's answers over HTTP (standard library only).

The token of a service account comes from ``$VQUAL_SERVER_TOKEN`` or a file (mode 0600 or
stricter, named by ``--token-file`` or ``$VQUAL_SERVER_TOKEN_FILE``), never from the command
line, and is never printed.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError, PlatformError, VqualError
from qualification.evidence.bundle import RECORDS
from qualification.server.files import pack, unpack, valid_name

API = "/api/v1"
#: The largest bundle a pull accepts.
MAX_PULL = 1 << 31


class ServerRefusedError(VqualError):
    """The server answered with a refusal (exit 1): a push that does not verify, a conflict.
    ``status`` is the HTTP status it answered with."""

    status: int | None = None


def read_token(token_file: Path | None = None) -> str:
    """The service-account token from the environment or a 0600 file.

    Raises:
        BadInputError: no token, or a token file readable by others or unreadable.
    """
    named = token_file or (Path(os.environ["VQUAL_SERVER_TOKEN_FILE"])
                           if os.environ.get("VQUAL_SERVER_TOKEN_FILE") else None)
    if named is None:
        token = os.environ.get("VQUAL_SERVER_TOKEN", "").strip()
        if not token:
            raise BadInputError("no server token: set VQUAL_SERVER_TOKEN or use --token-file")
        return token
    try:
        mode = stat.S_IMODE(named.stat().st_mode)
        if mode & 0o077:
            raise BadInputError(f"token file {named} is readable by group or others "
                                f"(mode {mode:04o}); chmod 600 it")
        token = named.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInputError(f"token file {named} cannot be read: {exc.strerror}") from None
    if not token:
        raise BadInputError(f"token file {named} is empty")
    return token


@dataclass
class Client:
    url: str
    token: str
    timeout: float = 300.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInputError(f"server URL {self.url!r} is not an http(s) URL")
        self.url = self.url.rstrip("/")

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[bytes, dict[str, str]]:
        req = urllib.request.Request(self.url + API + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read(MAX_PULL), dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PlatformError(f"cannot reach the server at {self.url}: {reason}") from None

    def json(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> Any:
        data, _ = self.request(method, path, body, content_type)
        return json.loads(data)

    # -------------------------------------------------------------------- commands
    def push(self, bundle: Path) -> dict[str, Any]:
        out: dict[str, Any] = self.json("POST", "/runs", pack(bundle), "application/x-tar")
        return out

    def pull(self, ref: str, out_dir: Path) -> tuple[dict[str, Any], Path]:
        """Fetch run ``ref`` (run id or seal) into ``out_dir/<change>/<run>``."""
        quoted = urllib.parse.quote(ref, safe="")
        info: dict[str, Any] = self.json("GET", f"/runs/{quoted}")
        change, run = valid_name(info["change_id"], "change id"), valid_name(info["run_id"], "run id")
        target = out_dir / change / run
        if target.exists():
            raise BadInputError(f"{target} exists; pull into another directory")
        data, _ = self.request("GET", f"/runs/{urllib.parse.quote(run, safe='')}/bundle")
        unpack(data, target, max_bytes=MAX_PULL)
        if not (target / RECORDS).is_file():
            raise ServerRefusedError(f"the server sent no {RECORDS} for {run}")
        return info, target

    def void(self, ref: str, envelope: bytes) -> dict[str, Any]:
        quoted = urllib.parse.quote(ref, safe="")
        out: dict[str, Any] = self.json("POST", f"/runs/{quoted}/void", envelope)
        return out


@dataclass
class HeldRuns:
    """What the evidence server holds, asked run by run by seal (the ``EvidenceServer`` a
    decommissioning checks, qualification.baseline.decommission). The token is read when it
    is made (``token_file``, else ``$VQUAL_SERVER_TOKEN(_FILE)``) and never shown.

    Raises:
        BadInputError: a URL that is not http(s), no token.
    """

    url: str
    token_file: Path | None = None

    def __post_init__(self) -> None:
        self._client = Client(self.url, read_token(self.token_file), timeout=60.0)
        self.url = self._client.url

    def held(self, seal: str) -> dict[str, Any] | None:
        """The server's record of the run sealed ``seal``, or None when it holds none."""
        try:
            info: dict[str, Any] = self._client.json("GET", f"/runs/{urllib.parse.quote(seal)}")
        except ServerRefusedError as exc:
            if exc.status == 404:
                return None
            raise
        return info


@dataclass
class SealPush:
    """How pushing a just-sealed run went; ``line`` says it in one line."""

    server: str
    ok: bool
    line: str
    outcome: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"server": self.server, "ok": self.ok, "message": self.line,
                "outcome": self.outcome}


def push_sealed(bundle: Path, url: str, token_file: Path | None = None) -> SealPush:
    """Push a run at its seal (``vqual qualify``/``vqual patch`` with a server, the evidence
    callback's ``push_on_seal``). Never raises for the server or the network: the run is
    sealed locally whatever happens here, and ``vqual push`` can take it later."""
    try:
        out = Client(url, read_token(token_file)).push(bundle)
    except VqualError as exc:
        return SealPush(url, False, f"push to {url} failed: {exc.one_line()}; the run stays "
                        f"sealed at {bundle}; push it later with vqual push")
    return SealPush(url, True, f"pushed to {url}: {out['outcome']} as run {out['run_id']}; "
                    f"log entries {out['log_indexes'] or '-'}", out)


def _refusal(exc: urllib.error.HTTPError) -> VqualError:
    try:
        body = json.loads(exc.read(1 << 20))
        message = str(body.get("error") or exc.reason)
    except (ValueError, AttributeError, OSError):
        message = str(exc.reason)
    text = f"server refused ({exc.code}): {message}"
    if exc.code in (401, 403):
        return BadInputError(text)
    refused = ServerRefusedError(text)
    refused.status = exc.code
    return refused
