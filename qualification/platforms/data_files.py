"""The spec's data files as a probe reads them: an HCL named by an ``hcl`` request, read again
and checked against the digest recorded at planning (the one the protocol approval covers), so
what is checked is what was approved. Shared by the vSphere and Hyper-V plug-ins; no vendor
library, so a controller without pyVmomi still qualifies Hyper-V hosts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..checks.guest_os import load_guest_os_support
from ..checks.hcl import load_hcl
from ..errors import BadInputError
from .base import BadArgs, observations_failed, probe_observation


def _approved_file(
    method: str, name: Any, data_files: Sequence[Mapping[str, Any]]
) -> tuple[str, str, str]:
    """``(path, text, digest)`` of the data file ``name``, read again and held to the digest
    recorded at planning.

    Raises:
        BadArgs: no such data file, unreadable, not UTF-8, or changed since planning.
    """
    found = [d for d in data_files if d.get("name") == name]
    if not found:
        known = ", ".join(str(d.get("name")) for d in data_files) or "none"
        raise BadArgs(f"{method}: the spec declares no data file {name!r} (data_files: {known})")
    path = str(found[0].get("path"))
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise BadArgs(f"{method}: cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(content).hexdigest()
    planned = found[0].get("digest")
    if planned and digest != planned:
        raise BadArgs(
            f"{method}: {path} changed since the run was planned "
            f"(digest {digest[:12]}..., planned {str(planned)[:12]}...)"
        )
    try:
        return path, content.decode("utf-8"), digest
    except UnicodeDecodeError as exc:
        raise BadArgs(f"{method}: {path}: {exc}") from None


def hcl_args(request: Mapping[str, Any], data_files: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``hcl`` request's args with the HCL entries of the named data file and its digest.

    Raises:
        BadArgs: no such data file, unreadable, changed since planning, or not an HCL.
    """
    args = dict(request.get("args") or {})
    path, text, digest = _approved_file("hcl", args.get("hcl"), data_files)
    try:
        entries = load_hcl(text, path)
    except BadInputError as exc:  # already one line naming the file
        raise BadArgs(f"hcl: {exc.one_line()}") from None
    args.update(entries=[e.to_json() for e in entries], digest=digest)
    return args


def guest_os_args(
    request: Mapping[str, Any], data_files: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The ``guest_os`` request's args with the guest OS support list of the named data file.

    Raises:
        BadArgs: no such data file, unreadable, changed since planning, or not such a list.
    """
    args = dict(request.get("args") or {})
    path, text, digest = _approved_file("guest_os", args.get("support"), data_files)
    try:
        entries = load_guest_os_support(text, path)
    except BadInputError as exc:
        raise BadArgs(f"guest_os: {exc.one_line()}") from None
    args.update(entries=[e.to_json() for e in entries], digest=digest)
    return args


def with_guest_os_support(
    requests: Sequence[Mapping[str, Any]], data_files: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(prepared, failed)``: ``guest_os`` requests with their support list; those whose file
    cannot be used become ``error`` observations (by key) instead."""
    prepared: list[dict[str, Any]] = []
    failed: dict[str, dict[str, Any]] = {}
    for request in requests:
        if request.get("method") != "guest_os":
            prepared.append(dict(request))
            continue
        try:
            prepared.append({**request, "args": guest_os_args(request, data_files)})
        except BadArgs as exc:
            failed[str(request.get("key", ""))] = probe_observation(method="guest_os", error=str(exc))
    return prepared, failed


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
    """Every request answered: ``hcl`` and ``guest_os`` requests given their approved file,
    then ``prepare``, then one ``probe`` call for the rest; what could not be prepared is an
    ``error`` observation, and a malformed call (``BadArgs``) makes every request one."""
    prepared, failed = with_hcl(requests, data_files)
    prepared, no_list = with_guest_os_support(prepared, data_files)
    failed.update(no_list)
    if prepare is not None:
        prepared, failed = prepare(prepared, failed)
    try:
        observations, _changed = probe(prepared)
    except BadArgs as exc:
        return observations_failed(requests, str(exc))
    observations.update(failed)
    return observations
