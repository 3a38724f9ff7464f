"""The requirements file a spec references (``requirements_file``, docs/spec.md): each URS
requirement's id and text, and what covers it besides the spec's own tests (other shipped
specs, vqual's own evidence, a procedure). It is one of the spec's data files, so it is sealed
in the bundle and covered by the protocol approval; a procedure's document is held to the
digest the file states, so approving the file approves the document's version too.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import jsonschema

from qualification.errors import SpecError
from qualification.reports.matrix import Procedure, Requirement
from qualification.spec.model import DataFile
from qualification.spec.source import FieldPath, LocatedDocument, load_located

_ID = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
_SHA256 = re.compile("^[0-9a-f]{64}$")

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "requirements"],
    "properties": {
        "apiVersion": {"const": "vqual/v1"},
        "kind": {"const": "Requirements"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "title", "version"],
            "properties": {
                "name": {"type": "string", "pattern": _ID},
                "title": {"type": "string", "minLength": 1},
                "version": {"type": "string", "minLength": 1},
                "source": {"type": "string"},
            },
        },
        "requirements": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "text"],
                "properties": {
                    "id": {"type": "string", "pattern": _ID},
                    "text": {"type": "string", "minLength": 1},
                    "specs": {"type": "array", "items": {"type": "string", "pattern": _ID}},
                    "evidence": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": "^ST-(IQ|OQ)-[0-9]+(-[A-Za-z0-9_.]+)?$"},
                    },
                    "procedure": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["sop", "document", "digest"],
                        "properties": {
                            "sop": {"type": "string", "pattern": _ID},
                            "document": {"type": "string", "minLength": 1},
                            "digest": {"type": "string", "pattern": _SHA256.pattern},
                        },
                    },
                },
            },
        },
    },
}


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(_SCHEMA)
    validator: jsonschema.protocols.Validator = cls(_SCHEMA)
    return validator


def load_requirements(data_file: DataFile) -> tuple[Requirement, ...]:
    """The requirements of a spec's requirements file, from the bytes read at load time.

    Raises:
        SpecError: not a requirements file, a duplicate id, or a procedure document that is
            missing or does not have the digest the file states; ``where`` is ``file:line``.
    """
    source = str(data_file.path)
    try:
        doc = load_located(data_file.raw.decode("utf-8"), source)
    except UnicodeDecodeError:
        raise SpecError("(root): requirements file is not UTF-8 text", where=source) from None
    errors = sorted(_validator().iter_errors(doc.data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise doc.error(tuple(first.absolute_path), " ".join(first.message.split())[:300])
    out: list[Requirement] = []
    seen: set[str] = set()
    for index, item in enumerate(doc.data["requirements"]):
        where: FieldPath = ("requirements", index)
        if item["id"] in seen:
            raise doc.error((*where, "id"), f"duplicate requirement {item['id']!r}")
        seen.add(item["id"])
        proc = item.get("procedure")
        out.append(
            Requirement(
                id=item["id"],
                text=" ".join(item["text"].split()),
                specs=tuple(dict.fromkeys(item.get("specs") or ())),
                evidence=tuple(dict.fromkeys(item.get("evidence") or ())),
                procedure=(
                    _procedure(doc, (*where, "procedure"), data_file.path.parent, proc)
                    if proc
                    else None
                ),
            )
        )
    return tuple(out)


def _procedure(
    doc: LocatedDocument, where: FieldPath, base: Path, data: dict[str, str]
) -> Procedure:
    """A procedure whose document, relative to the requirements file, has the stated digest."""
    rel = data["document"]
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise doc.error((*where, "document"), f"{rel!r} must be relative, below the file's folder")
    target = base / rel
    try:
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError as exc:
        raise doc.error(
            (*where, "document"), f"cannot read {target}: {exc.strerror or exc}"
        ) from None
    if digest != data["digest"]:
        raise doc.error(
            (*where, "digest"),
            f"{rel} has sha256 {digest}, the requirements file states {data['digest']}",
        )
    return Procedure(sop=data["sop"], document=rel, digest=digest)
