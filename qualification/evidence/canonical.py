"""Canonical JSON (RFC 8785, JCS) for evidence records.

``rfc8785`` is the reference implementation. It walks the object in Python and costs about
175 us for a typical 1 KB record, more than the Ed25519 signature itself, which would cap the
writer well below the raw signing rate. So the common case goes through the standard
library's C encoder, which already produces JCS bytes when:

- every float is *plain*: finite, and its ``repr`` has neither an exponent nor a trailing
  ``.0`` (such as the ``0.37`` of a check's ``duration_ms``). ``rfc8785`` formats a float
  from ``str(f)`` and changes only exponents, ``.0`` endings and zero, so for a plain float
  its bytes are the ``repr`` the C encoder writes. Other floats differ (``1.0`` vs ``1``,
  ``1e+16`` vs ``10000000000000000``, ``1e-05`` vs ``0.00001``);
- no object key contains a character outside the BMP (JCS sorts keys by UTF-16 code units,
  Python by code points; they disagree only between astral and U+E000..U+FFFF characters;
  an all-ASCII output rules this out at once);
- every integer is within the I-JSON safe range (checked here, as ``rfc8785`` does).

Anything else falls back to ``rfc8785``. ``tests/unit/evidence/test_canonical.py`` proves
identical bytes with a property test over every JSON shape records use.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import rfc8785

from qualification.errors import BadInputError

#: Largest integer magnitude JSON numbers (IEEE doubles) represent exactly.
MAX_SAFE_INT = 2**53 - 1


def _not_json(obj: Any) -> Any:
    raise TypeError(f"value of type {type(obj).__name__} is not JSON")


def _make_encoder() -> Callable[[Any], str]:
    # The C encoder built once: JSONEncoder.encode builds a new one per call, which is a
    # measurable share of a record's cost. Without circular-reference markers: records are
    # trees, and _scan would recurse without end on a cycle first anyway.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(
            ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
        ).encode
    c_encode = make(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))

    return encode


_encode = _make_encoder()


class CanonicalError(BadInputError):
    """A value cannot be represented in canonical JSON (wrong type, unsafe integer, lone
    surrogate, NaN)."""


_SLOW = 1  # needs the reference encoder (a float that is not plain; astral keys are found after encoding)
_BIG = 2  # holds an integer beyond 2**53-1 (normalise it or refuse)
_BAD = 4  # not JSON: find the path and raise


def _scan(obj: Any) -> int:
    """Flags describing ``obj``; one pass, no allocation (the writer's hot path)."""
    t = type(obj)
    if t is dict:
        flags = 0
        for key, value in obj.items():
            if type(key) is not str:
                return _BAD
            tv = type(value)
            if tv is str or value is None or tv is bool:
                continue
            if tv is int:
                if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                    flags |= _BIG
                continue
            flags |= _scan(value)
        return flags
    if t is list or t is tuple:
        flags = 0
        for value in obj:
            tv = type(value)
            if tv is str or value is None or tv is bool:
                continue
            if tv is int:
                if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                    flags |= _BIG
                continue
            flags |= _scan(value)
        return flags
    if t is str or obj is None or t is bool:
        return 0
    if t is int:
        return 0 if -MAX_SAFE_INT <= obj <= MAX_SAFE_INT else _BIG
    if t is float:
        return 0 if _plain_float(obj) else _SLOW
    return _BAD


def _plain_float(value: float) -> bool:
    """A float whose ``repr`` is already its JCS form (module docstring): no exponent, no
    ``.0`` ending (integral values and zero), not ``nan``/``inf``."""
    text = repr(value)
    return not text.endswith(".0") and "e" not in text and "n" not in text


def _first_problem(obj: Any, path: str) -> str | None:
    """Where and why ``obj`` is not canonical-JSON material (for the error message)."""
    t = type(obj)
    where = "$" + path
    if t is dict:
        for key, value in obj.items():
            if type(key) is not str:
                return f"object key {key!r} at {where} is not a string"
            found = _first_problem(value, f"{path}.{key}")
            if found:
                return found
        return None
    if t is list or t is tuple:
        for i, value in enumerate(obj):
            found = _first_problem(value, f"{path}[{i}]")
            if found:
                return found
        return None
    if t is int and not -MAX_SAFE_INT <= obj <= MAX_SAFE_INT:
        return (
            f"integer {obj} at {where} exceeds 2**53-1; normalize_for_record() stores it as a "
            "string"
        )
    if t in (str, int, float, bool) or obj is None:
        return None
    if isinstance(obj, bool | int | float | str):
        # Subclasses (IntEnum, str enums): the two encoders treat them differently.
        return f"value of type {t.__name__} at {where}; normalize_for_record() first"
    return f"value of type {t.__name__} at {where} is not JSON"


def canonical_bytes(obj: Any) -> bytes:
    """Serialise ``obj`` as RFC 8785 canonical JSON (UTF-8).

    Raises:
        CanonicalError: for non-JSON types, non-string keys, integers beyond 2**53-1 (use
            :func:`normalize_for_record` first), NaN/infinity or lone surrogates.
    """
    flags = _scan(obj)
    if flags & (_BAD | _BIG):
        raise CanonicalError(_first_problem(obj, "") or "value is not JSON")
    return _encode_checked(obj, flags)


def canonical_record_bytes(obj: Any) -> bytes:
    """:func:`normalize_for_record` then :func:`canonical_bytes`, walking once when the
    value needs no normalising (the usual case)."""
    flags = _scan(obj)
    if flags & (_BAD | _BIG):
        obj = normalize_for_record(obj)
        flags = _scan(obj)
        if flags & (_BAD | _BIG):
            raise CanonicalError(_first_problem(obj, "") or "value is not JSON")
    return _encode_checked(obj, flags)


def _encode_checked(obj: Any, flags: int) -> bytes:
    if not flags & _SLOW:
        text = _encode(obj)
        # Only a non-ASCII output can hold an astral key; one C call rules it out.
        if text.isascii():
            return text.encode("ascii")
        if not _has_astral_key(obj):
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                raise CanonicalError("string contains a lone surrogate (not valid UTF-8)") from None
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, ValueError) as exc:
        raise CanonicalError(f"cannot canonicalise value: {exc}") from None


def _has_astral_key(obj: Any) -> bool:
    """Whether any object key holds a character beyond U+FFFF (JCS sorts those by UTF-16)."""
    if type(obj) is dict:
        for key, value in obj.items():
            if max(key, default="") > "\uffff" or _has_astral_key(value):
                return True
    elif type(obj) is list or type(obj) is tuple:
        return any(_has_astral_key(v) for v in obj)
    return False


def normalize_for_record(obj: Any) -> Any:
    """Return a copy of ``obj`` fit for a record: big integers become decimal strings.

    Integers beyond 2**53-1 in magnitude (some sysctl values, 64-bit counters) cannot travel
    as JSON numbers without loss, so formats.md stores them as strings. Tuples become lists,
    mappings become dicts, ``str``/``int`` subclasses (enums) become plain values. Everything
    else must already be JSON (``bool``, ``None``, ``float``, ``str``); other types raise
    :class:`CanonicalError` naming the path.
    """
    return _normalize(obj, "")


def _normalize(obj: Any, path: str) -> Any:
    t = type(obj)
    if t is str or obj is None or t is bool or t is float:
        return obj
    if t is int:
        return obj if -MAX_SAFE_INT <= obj <= MAX_SAFE_INT else str(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalError(f"object key {key!r} at ${path} is not a string")
            out[str(key)] = _normalize(value, f"{path}.{key}")
        return out
    if isinstance(obj, list | tuple):
        return [_normalize(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return _normalize(int(obj), path)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, Sequence) and not isinstance(obj, bytes | bytearray):
        return [_normalize(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    raise CanonicalError(f"value of type {t.__name__} at ${path} is not JSON")
