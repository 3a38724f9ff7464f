"""Application data in a fingerprint: the files a site names as its application's data.

A conversion must prove that application and data arrived complete and unchanged
(URS-CONV-01). The inventory names the data of each system (``vqual_app_data``: files or
directories, absolute paths on the target); every guest fingerprint of that target then
digests them too. The target-side probe digests them as it digests key files (one round trip,
same limits: ``max_files``, ``max_file_mib``); on the controller they are moved from
``guest.files`` into ``guest.data`` ({path: {type, mode, owner, sha256}}), so a comparison can
tell a data file (always compared, never an allowed difference) from a key file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from qualification.errors import BadInputError

#: The inventory variable listing a target's application data (paths on the target).
APP_DATA_VAR = "vqual_app_data"


def data_paths(value: Any, *, where: str = APP_DATA_VAR) -> tuple[str, ...]:
    """The normalised absolute paths of ``vqual_app_data``; () when unset.

    Raises:
        BadInputError: not a list of absolute paths.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) and p.startswith("/") for p in value):
        raise BadInputError("must be a list of absolute paths on the target", where=where)
    return tuple(sorted({posixpath.normpath(p) for p in value}))


def patterns_for(paths: Sequence[str]) -> list[str]:
    """The probe's file patterns for ``paths``: the path itself and, for a directory,
    everything below it (``**`` recurses; a file's ``/**`` matches nothing)."""
    out: list[str] = []
    for path in paths:
        out += [path, path.rstrip("/") + "/**"]
    return out


def is_data(path: str, paths: Sequence[str]) -> bool:
    """True if ``path`` is one of ``paths`` or below one of them."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in paths)


def with_app_data(
    requests: Sequence[Mapping[str, Any]], paths: Sequence[str]
) -> list[dict[str, Any]]:
    """The host probe's ``requests`` with the data ``paths`` added to each fingerprint
    request's file patterns (its key stays, so its tests still find the observation).

    A fingerprint request without ``files`` digests the probe's default key files; those
    are kept by naming them with the data (``default_files``, which the probe resolves).
    """
    out = []
    for request in requests:
        req = dict(request)
        if paths and req.get("method") == "fingerprint":
            args = dict(req.get("args") or {})
            if args.get("files") is None:
                args["default_files"] = True
            args["files"] = list(args.get("files") or []) + patterns_for(paths)
            req["args"] = args
        out.append(req)
    return out


def split_data(value: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """A fingerprint observation's value with the files under ``paths`` moved from
    ``guest.files`` to ``guest.data`` (an empty mapping when nothing is there: all removed)."""
    guest = value.get("guest")
    if not paths or not isinstance(guest, Mapping):
        return dict(value)
    files = dict(guest.get("files") or {})
    data = {p: files.pop(p) for p in sorted(files) if is_data(p, paths)}
    return {**value, "guest": {**guest, "files": files, "data": data}}
