"""Checking a bundle against the transparency log: a signed checkpoint, the inclusion of the
bundle's seal and of every record after it, and the log's consistency since the checkpoint this
state directory saw last (pymerkle verifies the proofs).

The server's answers for one bundle (the signed checkpoint, an inclusion proof per leaf, a
consistency proof from a checkpoint seen before) are one JSON document, a *log proof*
(:func:`fetch_proof`); ``vqual pull`` saves it beside the bundle as ``<run>.log.json``, and
:func:`check_proof` checks it online or offline alike. The leaves are always recomputed from
the bundle itself, never taken from the proof.

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
from typing import Any, Protocol

from qualification.errors import BadInputError, VqualError
from qualification.server.leaves import CHECKPOINT_TYPE, leaf_hash, read_sealed
from qualification.signing import TrustStore

SEEN_FILE = Path("log") / "seen.json"
#: The schema of a saved log proof.
PROOF_FORMAT = "vqual.log-proof/v1"
#: The name ``vqual pull`` saves a run's log proof under, beside the run's directory.
PROOF_SUFFIX = ".log.json"


class LogClient(Protocol):
    url: str

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str = "application/json") -> tuple[bytes, dict[str, str]]: ...

    def json(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> Any: ...


@dataclass
class LogCheck:
    size: int = 0
    root: str = ""
    included: list[tuple[str, int]] = field(default_factory=list)  # (what, index)
    problems: list[str] = field(default_factory=list)
    consistent_from: int | None = None
    notes: list[str] = field(default_factory=list)  # first contact, what offline cannot prove

    def lines(self, name: str) -> list[str]:
        status = "INVALID" if self.problems else "VALID"
        out = [f"{name}: log {status} at checkpoint size {self.size} root {self.root[:16]}"]
        out += [f"  {what}: included at log index {index}" for what, index in self.included]
        if self.consistent_from is not None:
            out.append(f"  consistent with the checkpoint of size {self.consistent_from} seen "
                       "before")
        out += [f"  {note}" for note in self.notes]
        out += [f"  {problem}" for problem in self.problems]
        return out


def seen(state_dir: Path) -> dict[str, Any]:
    """The last checkpoint seen per server URL."""
    try:
        data = json.loads((state_dir / SEEN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _save_seen(state_dir: Path, url: str, checkpoint: dict[str, Any]) -> None:
    known = seen(state_dir)
    known[url] = {k: checkpoint[k] for k in ("size", "root", "time")}
    path = state_dir / SEEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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


def load_proof(path: Path) -> dict[str, Any]:
    """A saved log proof.

    Raises:
        BadInputError: unreadable, not JSON, or not a log proof.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"log proof {path} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise BadInputError(f"log proof {path} is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
        raise BadInputError(f"{path} is not a log proof ({PROOF_FORMAT})")
    return data


def save_proof(proof: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(proof, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- judging them
def check_log(client: LogClient, bundle: Path, state_dir: Path,
              trust: TrustStore | None = None) -> LogCheck:
    """Check ``bundle`` against the log at ``client`` now; ``problems`` empty: all holds."""
    return check_proof(fetch_proof(client, bundle, state_dir), bundle, state_dir, trust)


def check_proof(proof: dict[str, Any], bundle: Path, state_dir: Path,
                trust: TrustStore | None = None, *, offline: bool = False) -> LogCheck:
    """Check a log proof (fetched now or saved by ``vqual pull``) for ``bundle``: the
    checkpoint's signature (role ``log`` in ``trust``, by default the server's way of loading
    it), the inclusion of every leaf the bundle has, and consistency with the checkpoint this
    state directory saw of the same server. Records the checkpoint as seen when it holds.

    ``offline`` (a saved proof): a checkpoint seen here that the saved proof cannot be proven
    consistent with (newer, or no proof from it) is a note, not a failure; online it fails.
    """
    from qualification.evidence.verify import open_signed_document

    if trust is None:
        from qualification.server.config import load_trust

        trust = load_trust(state_dir)
    out = LogCheck()
    try:
        envelope = json.dumps(proof["checkpoint"]).encode()
        cp = open_signed_document(envelope, CHECKPOINT_TYPE, trust, "log",
                                  where="log checkpoint").payload
        out.size, out.root = int(cp["size"]), str(cp["root"])
    except (VqualError, KeyError, TypeError, ValueError) as exc:
        out.problems.append(f"bad checkpoint signature: {_why(exc)}")
        return out
    server = str(proof.get("server", ""))
    previous = seen(state_dir).get(server)
    if previous is None:
        out.notes.append(f"first contact with the log at {server}: this checkpoint is "
                         "recorded; later checks prove the log consistent with it")
    else:
        _check_consistency(proof, previous, out, offline)
    _check_inclusions(proof, bundle, out)
    if not any(p.startswith("log inconsistent") for p in out.problems):
        _save_seen(state_dir, server, cp)
    return out


def _check_consistency(proof: dict[str, Any], previous: dict[str, Any], out: LogCheck,
                       offline: bool) -> None:
    from pymerkle import ConsistencyProof, InvalidProof, verify_consistency

    old_size, old_root = int(previous["size"]), str(previous["root"])
    seen_at = f"the checkpoint of size {old_size} seen at {previous.get('time')}"
    if old_size > out.size:
        if offline:  # an older saved proof; the newer checkpoint seen stands
            out.notes.append(f"not proven consistent with {seen_at}: the saved checkpoint is "
                             "older; check online (--log URL) for that")
            return
        out.problems.append(f"log inconsistent: it has {out.size} entries, fewer than {seen_at}")
        return
    if old_size == out.size:
        if old_root != out.root:
            out.problems.append(f"log inconsistent: its root differs from {seen_at}")
        else:
            out.consistent_from = old_size
        return
    step = next((s for s in proof.get("consistency", []) if s.get("first") == old_size
                 and s.get("second") == out.size), None)
    if step is None and offline:
        out.notes.append(f"not proven consistent with {seen_at}: the saved proof holds no "
                         "consistency proof from it; check online (--log URL) for that")
        return
    try:
        if step is None:
            raise ValueError("the server gave no consistency proof")
        if "error" in step:
            raise ValueError(step["error"])
        verify_consistency(bytes.fromhex(old_root), bytes.fromhex(out.root),
                           ConsistencyProof.deserialize(step["proof"]),
                           prior_size=old_size, later_size=out.size)
    except (InvalidProof, KeyError, ValueError, TypeError) as exc:
        out.problems.append(f"log inconsistent since {seen_at}: {_why(exc)}")
        return
    out.consistent_from = old_size


def _check_inclusions(proof: dict[str, Any], bundle: Path, out: LogCheck) -> None:
    from pymerkle import InclusionProof, InvalidProof, verify_inclusion

    sealed = read_sealed(bundle)
    held = {e.get("leaf_hash"): e for e in proof.get("inclusion", []) if isinstance(e, dict)}
    what = ["seal"] + [kind for kind, _ in sealed.after()]
    for name, leaf in zip(what, sealed.leaves(), strict=True):
        digest = leaf_hash(leaf)
        entry = held.get(digest)
        try:
            if entry is None:
                raise ValueError("the log proof holds no proof for it")
            if "error" in entry:
                raise ValueError(entry["error"])
            verify_inclusion(bytes.fromhex(digest), bytes.fromhex(out.root),
                             InclusionProof.deserialize(entry["proof"]),
                             index=int(entry["index"]), size=out.size)
        except (InvalidProof, KeyError, ValueError, TypeError) as exc:
            out.problems.append(f"{name} {digest[:16]} not included in the log: {_why(exc)}")
            continue
        out.included.append((name, int(entry["index"])))


def _why(exc: BaseException) -> str:
    if isinstance(exc, VqualError):
        return exc.one_line()
    if isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], str):
        return " ".join(exc.args[0].split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


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
