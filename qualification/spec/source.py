"""YAML loading with line tracking, so every spec error can name ``file:line`` and a field path.

PyYAML's composer gives nodes with marks; we build plain JSON-like data from the nodes ourselves
(instead of letting the constructor do it) so that each value's line is recorded under its field
path, duplicate keys are refused (PyYAML silently keeps the last one), and values that cannot
survive canonical JSON (timestamps, NaN, binary, custom tags) are refused where they stand.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from qualification.errors import SpecError
from qualification.yamlio import SAFE_LOADER

# libyaml's parser is about ten times faster than the pure-Python one and gives the same
# nodes and marks; the pure-Python one when PyYAML was built without it.
_Loader: Any = SAFE_LOADER

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

#: A field path: mapping keys and sequence indexes from the document root.
FieldPath = tuple[str | int, ...]

# Aliases let a few lines of YAML expand into an exponential tree (and recursive aliases into
# an endless one); a spec is a few hundred nodes, so a generous cap refuses both.
MAX_NODES = 200_000

_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")
)


def format_path(path: FieldPath) -> str:
    """``("tests", 3, "expect", "op")`` -> ``tests[3].expect.op``; the root is ``(root)``.

    Keys that are not plain names are quoted: ``data_files["../hcl"]``.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:  # quoted, so a key like "a.b" or ": x" cannot be misread as a path
            text += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return text or "(root)"


@dataclass
class LocatedDocument:
    """A YAML document as plain data plus the 1-based line of every field path in it."""

    source: str
    data: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor present in the document."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def where(self, path: FieldPath) -> str:
        return f"{self.source}:{self.line(path)}"

    def error(self, path: FieldPath, message: str) -> SpecError:
        """A :class:`SpecError` located at ``path``: ``file:line: field.path: message``."""
        return SpecError(f"{format_path(path)}: {message}", where=self.where(path))


def read_located(path: Path, what: str) -> tuple[bytes, LocatedDocument]:
    """The bytes of a YAML file and its located document; ``what`` names the file in errors
    (``spec``, ``change file``).

    Raises:
        SpecError: the file cannot be read, is not UTF-8 (``where`` names the line), or is
            not YAML a spec can hold (see :func:`load_located`).
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror or exc}", where=source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(f"(root): {what} is not UTF-8 text", where=f"{source}:{line}") from None
    return raw, load_located(text, source)


def load_located(text: str, source: str) -> LocatedDocument:
    """Parse one YAML document from ``text``; ``source`` names it in error messages.

    Raises:
        SpecError: the text is not YAML, holds several documents, or uses a construct that
            a spec cannot hold (duplicate or non-string keys, timestamps, NaN, custom tags).
    """
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, source) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.reader.ReaderError as exc:
            raise _reader_error(exc, text, source) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            problem = " ".join(part for part in (exc.context, exc.problem) if part)
            raise SpecError(
                f"(root): not valid YAML: {problem or exc}", where=f"{source}:{line}"
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError(f"(root): not valid YAML: {exc}", where=f"{source}:1") from None
        doc = LocatedDocument(source=source, data=None)
        if node is None:
            doc.lines[()] = 1
            return doc
        builder = _Builder(loader, doc)
        doc.data = builder.build(node, ())
        return doc
    except RecursionError:
        # the composer and the builder recurse per nesting level; no spec nests this deep
        raise SpecError("(root): nested too deeply", where=f"{source}:1") from None
    finally:
        loader.dispose()


def _reader_error(exc: yaml.reader.ReaderError, text: str, source: str) -> SpecError:
    # libyaml reports a byte offset and Python a character offset: locate the character itself
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    index = text.find(chr(code))
    line = text[:index].count("\n") + 1 if index >= 0 else 1
    return SpecError(
        f"(root): not valid YAML: character U+{code:04X} is not allowed", where=f"{source}:{line}"
    )


class _Builder:
    def __init__(self, loader: Any, doc: LocatedDocument) -> None:
        self.loader = loader
        self.doc = doc
        self.count = 0

    def _fail(self, node: Node, path: FieldPath, message: str) -> SpecError:
        return SpecError(
            f"{format_path(path)}: {message}",
            where=f"{self.doc.source}:{node.start_mark.line + 1}",
        )

    def build(self, node: Node, path: FieldPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._fail(node, path, f"document too large (more than {MAX_NODES} nodes)")
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._fail(node, path, f"unsupported YAML tag {node.tag}")
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        raise self._fail(node, path, "unsupported YAML node")  # pragma: no cover - composer only

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            raise self._fail(node, path, f"unsupported YAML tag {node.tag}")
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
        try:
            self.loader.flatten_mapping(node)  # resolve `<<` merge keys in place
        except yaml.MarkedYAMLError as exc:
            raise self._fail(node, path, f"bad merge key: {exc.problem}") from None
        # flatten_mapping puts merged pairs first; they may be overridden, own keys may not repeat
        merged = len(node.value) - own
        result: dict[str, Any] = {}
        seen_own: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode):
                raise self._fail(key_node, path, "mapping keys must be plain strings")
            key = self._scalar(key_node, path)
            if not isinstance(key, str):
                raise self._fail(
                    key_node,
                    path,
                    f"key {key_node.value!r} is read as {type(key).__name__}, "
                    "not a string (quote it)",
                )
            if index >= merged:
                if key in seen_own:
                    raise self._fail(key_node, (*path, key), "duplicate key")
                seen_own.add(key)
            self.doc.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key))
        return result

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            kind = node.tag.rsplit(":", 1)[-1]
            hint = " (quote it)" if node.tag == "tag:yaml.org,2002:timestamp" else ""
            raise self._fail(node, path, f"unsupported value {node.value!r} of type {kind}{hint}")
        # The safe constructor of the tag itself, without construct_object's bookkeeping (a
        # tenth of reading a large spec); a string is the node's own text.
        if node.tag == _STR_TAG:
            return node.value
        value = self.loader.yaml_constructors[node.tag](self.loader, node)
        if isinstance(value, float) and not math.isfinite(value):
            raise self._fail(node, path, f"non-finite number {node.value!r} is not allowed")
        return value
