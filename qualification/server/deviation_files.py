"""Deviations as files, for both ends: the JSON form a push and a pull carry, laid out as (or
read from) a state directory's ``deviations/<change>/`` (``deviations.yaml`` and the waiver
files under ``waivers/``, each with its time-stamp token). Standard library and the review
code only, so the client needs no server extra.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError
from qualification.evidence.trusted_time import token_path
from qualification.review.deviations import DEVIATIONS_FILE, WAIVERS_DIR, change_dir

#: A waiver's file name under ``waivers/`` (``vqual deviation approve`` names them
#: ``<deviation>-<time>-<key id>.json``).
_WAIVER_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")


def write_layout(state: Path, change_id: str, deviations: Sequence[Mapping[str, Any]],
                 waivers: Sequence[Mapping[str, Any]]) -> None:
    """Write ``deviations`` and ``waivers`` (the push's and pull's JSON form) as the state
    directory ``state``'s ``deviations/<change>/``."""
    folder = change_dir(state, change_id)
    (folder / WAIVERS_DIR).mkdir(parents=True, exist_ok=True)
    (folder / DEVIATIONS_FILE).write_bytes(deviations_yaml(change_id, deviations))
    for waiver in waivers:
        name = waiver_file_name(waiver.get("file"))
        path = folder / WAIVERS_DIR / name
        path.write_bytes(_text(waiver.get("envelope"), "envelope").encode("utf-8") + b"\n")
        if waiver.get("token"):
            try:
                token_path(path).write_bytes(base64.b64decode(
                    _text(waiver["token"], "token"), validate=True))
            except ValueError:
                raise BadInputError(f"waiver {name}: token is not base64") from None


def deviations_yaml(change_id: str, deviations: Sequence[Mapping[str, Any]]) -> bytes:
    """A ``deviations.yaml`` holding ``deviations`` (their JSON form) of ``change_id``."""
    doc = {"version": 1, "change_id": change_id, "deviations": [dict(d) for d in deviations]}
    return str(yaml.safe_dump(doc, sort_keys=False)).encode("utf-8")


def waiver_file_name(value: object) -> str:
    if not isinstance(value, str) or not _WAIVER_FILE.match(value):
        raise BadInputError(f"waiver file name {str(value)[:80]!r} is not a safe .json name")
    return value


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{what} must be a string")
    return value


def read_layout(state: Path, change_id: str) -> list[dict[str, Any]]:
    """The waiver files of a layout (or of a controller's state directory) in JSON form."""
    folder = change_dir(state, change_id) / WAIVERS_DIR
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        tsr = token_path(path)
        out.append({"file": path.name,
                    "envelope": path.read_bytes().rstrip(b"\n").decode("utf-8"),
                    "token": base64.b64encode(tsr.read_bytes()).decode() if tsr.is_file()
                    else None})
    return out


def pull_into(state: Path, change_id: str, pulled: Mapping[str, Any]) -> list[str]:
    """Write the pulled waivers of ``change_id`` into the state directory ``state`` where
    ``vqual deviation approve`` writes them (never over a file held; the change's
    ``deviations.yaml`` too when this state directory has none), then judge them as a run
    will: lines saying what was written and each deviation's state.

    Raises:
        BadInputError: the server's answer is malformed, or names a waiver file that is held
            here with other content.
    """
    from qualification.evidence.records import utc_now
    from qualification.review.deviations import deviation_state
    from qualification.review.documents import write_new
    from qualification.review.signed import load_trust

    waivers = pulled.get("waivers")
    if pulled.get("change_id") != change_id or not isinstance(waivers, list) or \
            not all(isinstance(w, Mapping) for w in waivers):
        raise BadInputError(f"the server's answer is not the deviations of {change_id}")
    folder = change_dir(state, change_id)
    lines: list[str] = []
    if not (folder / DEVIATIONS_FILE).exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_new(folder / DEVIATIONS_FILE,
                  deviations_yaml(change_id, list(pulled.get("deviations") or [])))
        lines.append(f"{folder / DEVIATIONS_FILE}: written from the server")
    new = 0
    for waiver in waivers:
        name = waiver_file_name(waiver.get("file"))
        path = folder / WAIVERS_DIR / name
        data = _text(waiver.get("envelope"), "envelope").encode("utf-8") + b"\n"
        if path.exists():
            if path.read_bytes() != data:
                raise BadInputError(f"{path} is held here with other content; not replaced")
            continue
        if waiver.get("token") and not token_path(path).exists():
            write_new(token_path(path), base64.b64decode(_text(waiver["token"], "token")))
        write_new(path, data)  # after its token: a waiver never lies here without it
        new += 1
    lines.append(f"{change_id}: {new} new waiver(s) written to {folder / WAIVERS_DIR}")
    judged = deviation_state(state, change_id, load_trust(state))
    now = utc_now()
    for dev in judged.deviations:
        got = judged.waivers.get(dev.id)
        by = f" by {got.name} at {got.time}" if got else ""
        lines.append(f"{dev.id}  {dev.test_id} on {dev.target}  {judged.status(dev, now)}{by}")
    lines.extend(f"  not counted: {reason}" for reason in judged.refused)
    return lines


__all__ = ["deviations_yaml", "pull_into", "read_layout", "waiver_file_name", "write_layout"]
