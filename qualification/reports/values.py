"""Plain-text forms of recorded values, shared by the JUnit and HTML renderers.

Deterministic: mappings are shown with sorted keys, so the same record gives the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Longest value shown in full; the record keeps the whole value (and the raw output).
DEFAULT_LIMIT = 4000


def show(value: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """A value as text: strings as they are, everything else as compact sorted JSON.

    Longer text is cut at ``limit`` characters with a note of how much was left out.
    """
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return cut(text, limit)


def cut(text: str, limit: int | None = DEFAULT_LIMIT) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]} … ({len(text) - limit} more characters in the record)"


def show_expected(expected: Any, limit: int | None = DEFAULT_LIMIT) -> str:
    """An acceptance criterion ``{op, value, ...}`` as ``op value (key: value, ...)``."""
    if not isinstance(expected, Mapping) or "op" not in expected:
        return show(expected, limit)
    text = str(expected["op"])
    if "value" in expected:
        text += " " + show(expected["value"], None)
    extras = [
        f"{key}: {show(expected[key], None)}"
        for key in sorted(expected)
        if key not in ("op", "value")
    ]
    if extras:
        text += " (" + ", ".join(extras) + ")"
    return cut(text, limit)


def show_time(value: str | None) -> str:
    """A recorded UTC time ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if not value:
        return ""
    text = value.replace("T", " ")
    text = text.removesuffix("Z")
    if "." in text:
        text = text.split(".", 1)[0]
    return f"{text} UTC"


def show_duration(duration_ms: float | None) -> str:
    if duration_ms is None:
        return ""
    if duration_ms >= 1000:
        return f"{duration_ms / 1000:.2f} s"
    return f"{duration_ms:.0f} ms"


def show_raw(raw: Any, seq: int | None = None) -> str:
    """Where a result's raw probe output is: a sealed file by digest, or inline in its record."""
    if isinstance(raw, Mapping):
        return f"raw output: {raw.get('file', '')} (sha256 {raw.get('sha256', '')})"
    if isinstance(raw, str):
        where = f"record seq {seq}" if seq is not None else "the record"
        return (
            f"raw output: inline in {where} ({len(raw.encode('utf-8', 'surrogateescape'))} bytes)"
        )
    return ""
