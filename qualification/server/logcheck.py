"""Asking an evidence server for a bundle's log proof, and ``vqual verify --log``: the signed
checkpoint, the inclusion of the bundle's seal and of every record after it, and the log's
consistency since the checkpoint this state directory saw last (judged by
:mod:`qualification.evidence.logproof`).

The server's answers for one bundle (the signed checkpoint, an inclusion proof per leaf, a
consistency proof from a checkpoint seen before) are one JSON document, a *log proof*
(:func:`fetch_proof`); ``vqual pull`` saves it beside the bundle as ``<run>.log.json``, and
:func:`check_proof` checks it online or offline alike. The leaves are always recomputed from
the bundle itself, never taken from the proof.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qualification.errors import BadInputError, VqualError
from qualification.evidence.logproof import (
    PROOF_FORMAT,
    PROOF_SUFFIX,
    LogCheck,
    check_proof,
    leaf_hash,
    load_proof,
    read_sealed,
    save_proof,
    seen,
)
from qualification.signing import TrustStore

__all__ = ["PROOF_SUFFIX", "LogCheck", "check_log", "fetch_proof", "save_proof", "verify_log"]


class LogClient(Protocol):
    url: str

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[bytes, dict[str, str]]: ...

    def json(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> Any: ...


# --------------------------------------------------------------------------- the server's answers
def fetch_proof(client: LogClient, bundle: Path, state_dir: Path) -> dict[str, Any]:
    """The server's log proof for ``bundle`` (no judgement; standard library only).

    A leaf the server cannot prove is kept with the server's refusal, so the check names it.
    """
    envelope, _ = client.request("GET", "/log/checkpoint")
    checkpoint = json.loads(envelope)
    size = int(_payload(checkpoint).get("size", 0))
    sealed = read_sealed(bundle)
    what = ["seal"] + [kind for kind, _ in sealed.after()]
    entries: list[dict[str, Any]] = []
    for name, leaf in zip(what, sealed.leaves(), strict=True):
        digest = leaf_hash(leaf)
        entry: dict[str, Any] = {"what": name, "leaf_hash": digest}
        try:
            answer = client.json("GET", "/log/inclusion?" + urllib.parse.urlencode(
                {"leaf_hash": digest, "size": size}))
            entry.update(index=int(answer["index"]), proof=answer["proof"])
        except VqualError as exc:
            entry["error"] = exc.one_line()
        entries.append(entry)
    proof: dict[str, Any] = {"format": PROOF_FORMAT, "server": client.url,
                             "run_id": sealed.run_id, "change_id": sealed.change_id,
                             "seal": sealed.seal, "checkpoint": checkpoint,
                             "inclusion": entries, "consistency": []}
    previous = seen(state_dir).get(client.url)
    if previous is not None and 0 < int(previous["size"]) < size:
        step: dict[str, Any] = {"first": int(previous["size"]), "second": size}
        try:
            step["proof"] = client.json("GET", "/log/consistency?" + urllib.parse.urlencode(
                {"first": step["first"], "second": size}))["proof"]
        except VqualError as exc:
            step["error"] = exc.one_line()
        proof["consistency"].append(step)
    return proof


def _payload(envelope: dict[str, Any]) -> dict[str, Any]:
    import base64

    try:
        out = json.loads(base64.b64decode(envelope["payload"]))
    except (KeyError, TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def check_log(client: LogClient, bundle: Path, state_dir: Path,
              trust: TrustStore | None = None) -> LogCheck:
    """Check ``bundle`` against the log at ``client`` now; ``problems`` empty: all holds.
    ``trust`` defaults to the server's way of loading it (the pinned root's store)."""
    if trust is None:
        from qualification.server.config import load_trust

        trust = load_trust(state_dir)
    return check_proof(fetch_proof(client, bundle, state_dir), bundle, state_dir, trust)


# --------------------------------------------------------------------------- vqual verify --log
@dataclass
class VerifyLog:
    """What ``vqual verify --log`` adds: lines for people, a JSON part, and whether it held."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    anchored: list[str] = field(default_factory=list)  # runs of a change the log anchors

    def to_json(self) -> dict[str, Any]:
        return {"status": "invalid" if self.problems else "valid", "problems": self.problems,
                "runs": self.runs}


def log_targets(bundle: Path, payload: dict[str, Any]) -> list[Path]:
    """The runs ``--log`` must find in the log: the bundle itself, or of a change directory
    the runs no later run cites (its latest run; a join), which only the log can anchor."""
    runs = payload.get("runs")
    if payload.get("schema") != "vqual.verify-change/v1" or not isinstance(runs, list):
        return [bundle]
    cited = {r.get("prev_run_seal") for r in runs}
    return [bundle / str(r["run"]) for r in runs if r.get("seal") and r["seal"] not in cited]


def verify_log(bundle: Path, payload: dict[str, Any], log: str, state_dir: Path,
               trust: TrustStore, token_file: Path | None) -> VerifyLog:
    """``vqual verify BUNDLE --log URL|PROOF`` after the bundle's own verification.

    Raises:
        BadInputError: the server extra (pymerkle) is missing, no token for a URL, or a
            proof file that cannot be read or names none of the runs to anchor.
    """
    try:
        import pymerkle  # noqa: F401 - the proofs are verified with it
    except ImportError:
        raise BadInputError("vqual verify --log needs pymerkle: pip install 'vqual[server]'") \
            from None
    targets = log_targets(bundle, payload)
    out = VerifyLog()
    if log.startswith(("http://", "https://")):
        from qualification.server.client import Client, read_token

        client = Client(log, read_token(token_file))
        checks = [(t, check_log(client, t, state_dir, trust)) for t in targets]
    else:
        proof = load_proof(Path(log))
        wanted = [t for t in targets if t.name == proof.get("run_id")]
        if not wanted:
            names = ", ".join(t.name for t in targets) or "none"
            raise BadInputError(f"log proof {log} is of run {proof.get('run_id')}, not of the "
                                f"run to anchor ({names})")
        checks = [(wanted[0], check_proof(proof, wanted[0], state_dir, trust, offline=True))]
    for target, result in checks:
        out.lines += result.lines(f"{target.name} in the log")
        out.problems += result.problems
        out.runs[target.name] = {"size": result.size, "root": result.root,
                                 "included": [list(i) for i in result.included],
                                 "consistent_from": result.consistent_from,
                                 "problems": result.problems, "notes": result.notes}
        if target != bundle and not result.problems:
            out.anchored.append(target.name)
            out.lines.append(f"  run {target.name} is anchored by the log (its seal at "
                             f"index {result.included[0][1]})")
    return out


def drop_anchored_warnings(text: str, payload: dict[str, Any], anchored: list[str]) -> str:
    """A change's "latest run not anchored" warnings, less those of runs the log anchors."""
    from qualification.evidence.change import NOT_ANCHORED

    def stale(line: str) -> bool:
        return any(f"{NOT_ANCHORED}: {name} " in line for name in anchored)

    if isinstance(payload.get("warnings"), list):
        payload["warnings"] = [w for w in payload["warnings"] if not stale(w)]
    return "\n".join(line for line in text.splitlines() if not stale(line))
