"""Checking a bundle against the transparency log: a signed checkpoint, the log's consistency
since the checkpoint this state directory saw last, and the inclusion of the bundle's seal and
of every signature after it (pymerkle verifies the proofs).

The last checkpoint seen per server is kept in ``<state>/log/seen.json``; it is replaced only
when the new one is proven consistent with it, so a log that was rewritten or cut stays
detected on every later check.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymerkle import (
    ConsistencyProof,
    InclusionProof,
    InvalidProof,
    verify_consistency,
    verify_inclusion,
)

from qualification.errors import VqualError
from qualification.evidence.verify import open_signed_document
from qualification.server.client import Client
from qualification.server.config import load_trust
from qualification.server.leaves import CHECKPOINT_TYPE, leaf_hash, read_sealed

SEEN_FILE = Path("log") / "seen.json"


@dataclass
class LogCheck:
    size: int = 0
    root: str = ""
    included: list[tuple[str, int]] = field(default_factory=list)  # (what, index)
    problems: list[str] = field(default_factory=list)
    consistent_from: int | None = None


def _seen(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / SEEN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _save_seen(state_dir: Path, url: str, checkpoint: dict[str, Any]) -> None:
    seen = _seen(state_dir)
    seen[url] = {k: checkpoint[k] for k in ("size", "root", "time")}
    path = state_dir / SEEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_log(client: Client, bundle: Path, state_dir: Path) -> LogCheck:
    """Check ``bundle`` against the log at ``client``; ``problems`` empty means all holds."""
    out = LogCheck()
    envelope, _ = client.request("GET", "/log/checkpoint")
    try:
        doc = open_signed_document(envelope, CHECKPOINT_TYPE, load_trust(state_dir), "log",
                                   where="log checkpoint")
    except VqualError as exc:
        out.problems.append(f"checkpoint not trusted: {exc.one_line()}")
        return out
    cp = doc.payload
    out.size, out.root = int(cp["size"]), str(cp["root"])
    previous = _seen(state_dir).get(client.url)
    if previous is not None:
        _check_consistency(client, previous, cp, out)
    sealed = read_sealed(bundle)
    what = ["seal"] + [kind for kind, _ in sealed.after()]
    for name, leaf in zip(what, sealed.leaves(), strict=True):
        _check_inclusion(client, name, leaf, out)
    if not any(p.startswith("log inconsistent") for p in out.problems):
        _save_seen(state_dir, client.url, cp)
    return out


def _check_consistency(client: Client, previous: dict[str, Any], cp: dict[str, Any],
                       out: LogCheck) -> None:
    old_size, old_root = int(previous["size"]), str(previous["root"])
    seen_at = f"the checkpoint of size {old_size} seen at {previous.get('time')}"
    if old_size > out.size:
        out.problems.append(f"log inconsistent: it has {out.size} entries, fewer than {seen_at}")
        return
    if old_size == out.size:
        if old_root != out.root:
            out.problems.append(f"log inconsistent: its root differs from {seen_at}")
        else:
            out.consistent_from = old_size
        return
    query = urllib.parse.urlencode({"first": old_size, "second": out.size})
    try:
        answer = client.json("GET", f"/log/consistency?{query}")
        proof = ConsistencyProof.deserialize(answer["proof"])
        verify_consistency(bytes.fromhex(old_root), bytes.fromhex(out.root), proof,
                           prior_size=old_size, later_size=out.size)
    except (InvalidProof, KeyError, ValueError, TypeError, VqualError) as exc:
        out.problems.append(f"log inconsistent since {seen_at}: {_why(exc)}")
        return
    out.consistent_from = old_size


def _check_inclusion(client: Client, what: str, leaf: bytes, out: LogCheck) -> None:
    digest = leaf_hash(leaf)
    query = urllib.parse.urlencode({"leaf_hash": digest, "size": out.size})
    try:
        answer = client.json("GET", f"/log/inclusion?{query}")
        proof = InclusionProof.deserialize(answer["proof"])
        verify_inclusion(bytes.fromhex(digest), bytes.fromhex(out.root), proof,
                         index=int(answer["index"]), size=out.size)
    except (InvalidProof, KeyError, ValueError, TypeError, VqualError) as exc:
        out.problems.append(f"{what} {digest[:16]} not proven in the log: {_why(exc)}")
        return
    out.included.append((what, int(answer["index"])))


def _why(exc: BaseException) -> str:
    if isinstance(exc, VqualError):
        return exc.one_line()
    return " ".join(f"{type(exc).__name__}: {exc}".split())
