"""Record-level constants and helpers shared by the writer, reader and verifier."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from qualification import FORMAT_VERSION
from qualification.errors import BadInputError

# Re-exported: the names the writer, reader and review modules take from here.
from qualification.evidence.kinds import CHECK_RESULT, REGISTRY, RUN_END, RUN_START, SIGNATURE
from qualification.evidence.kinds.signature import MEANING_ROLE
from qualification.verdict import VERDICTS

__all__ = [
    "CHECK_RESULT",
    "KINDS",
    "KNOWN_VERSIONS",
    "MEANING_ROLE",
    "RAW_INLINE_MAX",
    "RUN_END",
    "RUN_KINDS",
    "RUN_START",
    "SIGNATURE",
    "VERDICTS",
    "WRITE_VERSION",
    "ZERO_DIGEST",
    "check_safe_name",
    "format_time",
    "is_safe_name",
    "parse_time",
    "utc_now",
]

#: Format versions this code can read.
KNOWN_VERSIONS = frozenset({1, 2})
WRITE_VERSION = FORMAT_VERSION

ZERO_DIGEST = "0" * 64

#: Kinds written during a run, by the executor's key, between run.start and run.end.
RUN_KINDS = frozenset(k.name for k in REGISTRY.values() if not k.after_run_end)
KINDS = frozenset(REGISTRY)

#: Raw output up to this many UTF-8 bytes is stored inline in the record.
RAW_INLINE_MAX = 1024

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def is_safe_name(name: str) -> bool:
    """The path-safety rule for change ids and run ids (formats.md)."""
    return bool(_SAFE_NAME.fullmatch(name)) and name not in (".", "..")


def check_safe_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not is_safe_name(name):
        raise BadInputError(
            f"{what} {name!r} is not a safe name (^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$)"
        )
    return name


def utc_now() -> str:
    """The current UTC time in record form, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    # isoformat is several times faster than strftime; this runs once per record.
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise BadInputError("record times must be timezone-aware (UTC)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime | None:
    """Parse a record time; None if it is not exactly in record form."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None
