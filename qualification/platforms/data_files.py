"""The spec's data files as a probe reads them: an HCL named by an ``hcl`` request, read again
and checked against the digest recorded at planning (the one the protocol approval covers), so
what is checked is what was approved. Shared by the vSphere and Hyper-V plug-ins; no vendor
library, so a controller without pyVmomi still qualifies Hyper-V hosts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..checks.hcl import load_hcl
from ..errors import BadInputError
from .base import BadArgs, observations_failed, probe_observation


def hcl_args(request: Mapping[str, Any], data_files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``hcl`` request's args with the HCL entries of the named data file and its digest.

    Raises:
        BadArgs: no such data file, unreadable, changed since planning, or not an HCL.
    """
    args = dict(request.get("args") or {})
    name = args.get("hcl")
    found = [d for d in data_files if d.get("name") == name]
    if not found:
        known = ", ".join(str(d.get("name")) for d in data_files) or "none"
        raise BadArgs(f"hcl: the spec declares no data file {name!r} (data_files: {known})")
    path = str(found[0].get("path"))
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise BadArgs(f"hcl: cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(content).hexdigest()
    planned = found[0].get("digest")
    if planned and digest != planned:
        raise BadArgs(
            f"hcl: {path} changed since the run was planned "
            f"(digest {digest[:12]}..., planned {str(planned)[:12]}...)"
        )
    try:
        entries = load_hcl(content.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise BadArgs(f"hcl: {path}: {exc}") from None
    except BadInputError as exc:  # already one line naming the file
        raise BadArgs(f"hcl: {exc.one_line()}") from None
    args.update(entries=[e.to_json() for e in entries], digest=digest)
    return args


def with_hcl(
    requests: Sequence[Mapping[str, Any]], data_files: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(prepared, failed)``: ``hcl`` requests with their entries; those whose file cannot be
    used become ``error`` observations (by key) instead."""
    prepared: list[dict[str, Any]] = []
    failed: dict[str, dict[str, Any]] = {}
    for request in requests:
        if request.get("method") != "hcl":
            prepared.append(dict(request))
            continue
        try:
            prepared.append({**request, "args": hcl_args(request, data_files)})
        except BadArgs as exc:
            failed[str(request.get("key", ""))] = probe_observation(method="hcl", error=str(exc))
    return prepared, failed


#: ``(prepared, failed) -> (prepared, failed)``: a plug-in's own preparation after the HCL's.
Prepare = Callable[
    [list[dict[str, Any]], dict[str, dict[str, Any]]],
    tuple[list[dict[str, Any]], dict[str, dict[str, Any]]],
]


def answer_with_data_files(
    requests: Sequence[Mapping[str, Any]],
    data_files: Sequence[Mapping[str, Any]],
    probe: Callable[[list[dict[str, Any]]], tuple[dict[str, dict[str, Any]], bool]],
    prepare: Prepare | None = None,
) -> dict[str, dict[str, Any]]:
    """Every request answered: ``hcl`` requests given their approved file, then ``prepare``,
    then one ``probe`` call for the rest; what could not be prepared is an ``error``
    observation, and a malformed call (``BadArgs``) makes every request one."""
    prepared, failed = with_hcl(requests, data_files)
    if prepare is not None:
        prepared, failed = prepare(prepared, failed)
    try:
        observations, _changed = probe(prepared)
    except BadArgs as exc:
        return observations_failed(requests, str(exc))
    observations.update(failed)
    return observations
