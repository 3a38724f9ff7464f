"""A loaded spec as JSON data and back, so a validated spec can be handed to another process.

:func:`spec_to_json` keeps every field of :class:`~qualification.spec.model.Spec` (the file's
bytes and each data file's bytes base64-encoded); :func:`spec_from_json` rebuilds the same
frozen objects without validating the protocol again, but checks that the bytes still have
the digests recorded beside them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualification.errors import BadInputError
from qualification.reports.matrix import Requirement
from qualification.spec.model import (
    CloneSection,
    DataFile,
    Expectation,
    MasterSource,
    SizingRange,
    Spec,
    TestDef,
)
from qualification.spec.plan import plain_text

CODEC_VERSION = 1

_EXPECT_FIELDS = ("op", "value", "value_from", "min", "max", "cmp", "scheme", "group")


def _bytes_json(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _expectation_json(expect: Expectation) -> dict[str, Any]:
    return {name: getattr(expect, name) for name in _EXPECT_FIELDS}


def _test_json(test: TestDef) -> dict[str, Any]:
    return {
        "id": test.id,
        "title": test.title,
        "protocol": test.protocol,
        "requirements": list(test.requirements),
        "applies_to": list(test.applies_to),
        "risk": list(test.risk),
        "check": test.check,
        "params": test.params,
        "expect": _expectation_json(test.expect),
        "acceptance": test.acceptance,
        "description": test.description,
        "line": test.line,
        "scope": list(test.scope),
    }


def _clone_json(clone: CloneSection) -> dict[str, Any]:
    master = clone.master
    return {
        "identity": list(clone.identity),
        "sizing": {name: rng.to_json() for name, rng in clone.sizing.items()},
        "master": {
            "bundle": str(master.bundle) if master.bundle is not None else None,
            "declared": master.declared,
            "require_approval": master.require_approval,
            "subject": master.subject,
        },
        "disk_formats": list(clone.disk_formats),
    }


def spec_to_json(spec: Spec) -> dict[str, Any]:
    """Every field of ``spec`` as JSON data."""
    return {
        "v": CODEC_VERSION,
        "path": str(spec.path),
        "raw": _bytes_json(spec.raw),
        "digest": spec.digest,
        "name": spec.name,
        "title": spec.title,
        "version": spec.version,
        "description": spec.description,
        "requirements": list(spec.requirements),
        "data_files": [
            {
                "name": d.name,
                "declared": d.declared,
                "path": str(d.path),
                "digest": d.digest,
                "raw": _bytes_json(d.raw),
            }
            for d in spec.data_files
        ],
        "tests": [_test_json(test) for test in spec.tests],
        "clone": _clone_json(spec.clone) if spec.clone is not None else None,
        "requirements_file": spec.requirements_file,
        "expected_values": spec.expected_values,
        "traceability": [r.to_json() for r in spec.traceability],
    }


def _opt_text(value: Any) -> str | None:
    return None if value is None else plain_text(value)


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"{value!r} is not a list")
    return tuple(plain_text(item) for item in value)


def _number(value: Any) -> float | int | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{value!r} is not a number")


def _checked_bytes(encoded: Any, digest: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(plain_text(encoded), validate=True)
    except binascii.Error:
        raise TypeError(f"{what}: not base64") from None
    if hashlib.sha256(raw).hexdigest() != digest:
        raise BadInputError(f"{what}: the bytes handed over do not have their recorded digest")
    return raw


def _expectation(data: Mapping[str, Any]) -> Expectation:
    low, high = _number(data["min"]), _number(data["max"])
    return Expectation(
        op=plain_text(data["op"]),
        value=data["value"],
        value_from=_opt_text(data["value_from"]),
        min=low,
        max=high,
        cmp=_opt_text(data["cmp"]),
        scheme=_opt_text(data["scheme"]),
        group=_opt_text(data["group"]),
    )


def _test(data: Mapping[str, Any]) -> TestDef:
    params = data["params"]
    if not isinstance(params, dict):
        raise TypeError(f"params {params!r} is not a mapping")
    line = data["line"]
    if not isinstance(line, int) or isinstance(line, bool):
        raise TypeError(f"line {line!r} is not an integer")
    return TestDef(
        id=plain_text(data["id"]),
        title=plain_text(data["title"]),
        protocol=plain_text(data["protocol"]),
        requirements=_texts(data["requirements"]),
        applies_to=_texts(data["applies_to"]),
        risk=_texts(data["risk"]),
        check=plain_text(data["check"]),
        params=dict(params),
        expect=_expectation(data["expect"]),
        acceptance=plain_text(data["acceptance"]),
        description=_opt_text(data["description"]),
        line=line,
        scope=_texts(data["scope"]),
    )


def _range(data: Mapping[str, Any]) -> SizingRange:
    low, high = data.get("min"), data.get("max")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
            raise TypeError(f"sizing bound {bound!r} is not an integer")
    return SizingRange(min=low, max=high)


def _clone(data: Mapping[str, Any]) -> CloneSection:
    master = data["master"]
    bundle = master["bundle"]
    require = master["require_approval"]
    if not isinstance(require, bool):
        raise TypeError(f"require_approval {require!r} is not a boolean")
    sizing = data["sizing"]
    if not isinstance(sizing, Mapping):
        raise TypeError(f"sizing {sizing!r} is not a mapping")
    return CloneSection(
        identity=_texts(data["identity"]),
        sizing={plain_text(name): _range(rng) for name, rng in sizing.items()},
        master=MasterSource(
            bundle=Path(plain_text(bundle)) if bundle is not None else None,
            declared=_opt_text(master["declared"]),
            require_approval=require,
            subject=_opt_text(master["subject"]),
        ),
        disk_formats=_texts(data["disk_formats"]),
    )


def spec_from_json(data: Mapping[str, Any]) -> Spec:
    """The spec :func:`spec_to_json` wrote.

    Raises:
        BadInputError: not this codec's version, a field missing or mistyped, or bytes whose
            SHA-256 is not the digest written beside them.
    """
    try:
        if data["v"] != CODEC_VERSION:
            raise BadInputError(f"spec data version {data['v']!r} is not {CODEC_VERSION}")
        digest = plain_text(data["digest"])
        files = []
        for item in data["data_files"]:
            name, file_digest = plain_text(item["name"]), plain_text(item["digest"])
            files.append(
                DataFile(
                    name=name,
                    declared=plain_text(item["declared"]),
                    path=Path(plain_text(item["path"])),
                    digest=file_digest,
                    raw=_checked_bytes(item["raw"], file_digest, f"data file {name}"),
                )
            )
        clone = data["clone"]
        return Spec(
            path=Path(plain_text(data["path"])),
            raw=_checked_bytes(data["raw"], digest, f"spec {data['path']}"),
            digest=digest,
            name=plain_text(data["name"]),
            title=plain_text(data["title"]),
            version=plain_text(data["version"]),
            description=_opt_text(data["description"]),
            requirements=_texts(data["requirements"]),
            data_files=tuple(files),
            tests=tuple(_test(test) for test in data["tests"]),
            clone=_clone(clone) if clone is not None else None,
            requirements_file=_opt_text(data.get("requirements_file")),
            expected_values=_opt_text(data.get("expected_values")),
            traceability=tuple(Requirement.from_json(r) for r in data.get("traceability") or ()),
        )
    except (KeyError, TypeError) as exc:
        raise BadInputError(f"malformed spec data: missing or mistyped field {exc}") from None
