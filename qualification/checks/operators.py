"""Expectation operators: pure functions deciding whether an observed value is acceptable.

An expectation is the ``expect`` mapping of a spec test, with ``value_from`` already resolved
by the plan (the resolved value is in ``value``; the key stays in ``value_from`` for the
record). Every operator returns ``(ok, reason)``: ``reason`` says why it failed, in one line
that names both the expected and the observed value.

Operators:
    equals: observed equals ``value``. A number and a numeric string compare as numbers
        (sysctl values are strings, inventories often hold integers).
    in: observed equals one member of the list ``value``.
    regex: ``str(observed)`` fully matches the pattern ``value`` (Python ``re``).
    contains: ``value`` is a substring of a string, a member of a list, or a key of a mapping.
    absent: observed is None, missing or empty ("", [], {}).
    range: ``min <= observed <= max`` (both optional, inclusive); numbers or numeric strings.
        ``min``/``max`` may also come as a mapping in ``value`` (``value_from`` of a range).
    version: ``observed <cmp> value`` under ``scheme`` (pep440, debian or rpm).
    same_across_hosts: observed equals the majority of the hosts in ``group``; needs every
        host's value, so it is decided by ``qualification.checks.compare_across``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion
from packaging.version import Version as Pep440Version
from rpm_vercmp import vercmp as rpm_vercmp

Result = tuple[bool, str | None]

OPS = ("equals", "in", "regex", "contains", "absent", "range", "version", "same_across_hosts")
VERSION_CMPS = ("==", "!=", "<", "<=", ">", ">=")
VERSION_SCHEMES = ("pep440", "debian", "rpm")


def show(value: Any) -> str:
    """A short, unambiguous rendering of a value for reasons (JSON, strings quoted)."""
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def to_number(value: Any) -> Decimal | None:
    """A number from an int, float or numeric string; None for anything else (bools too)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def scalar_equal(observed: Any, expected: Any) -> bool:
    """Equality, except that a number and a numeric string compare by value."""
    if observed == expected and type(observed) is type(expected):
        return True
    if isinstance(observed, bool) or isinstance(expected, bool):
        return observed is expected
    if isinstance(observed, (int, float)) and isinstance(expected, (int, float)):
        return bool(observed == expected)
    if (
        isinstance(observed, str) != isinstance(expected, str)
        and isinstance(observed, (str, int, float))
        and isinstance(expected, (str, int, float))
    ):
        left, right = to_number(observed), to_number(expected)
        return left is not None and right is not None and left == right
    return bool(observed == expected)


def op_equals(observed: Any, expect: Mapping[str, Any]) -> Result:
    expected = expect.get("value")
    if scalar_equal(observed, expected):
        return True, None
    return False, f"expected {show(expected)}, observed {show(observed)}"


def op_in(observed: Any, expect: Mapping[str, Any]) -> Result:
    allowed = expect.get("value")
    if not isinstance(allowed, (list, tuple)):
        raise ValueError(f"'in' needs a list as value, got {show(allowed)}")
    if any(scalar_equal(observed, item) for item in allowed):
        return True, None
    return False, f"expected one of {show(list(allowed))}, observed {show(observed)}"


def op_regex(observed: Any, expect: Mapping[str, Any]) -> Result:
    pattern = str(expect.get("value"))
    if observed is None or isinstance(observed, (list, dict)):
        return False, f"expected a value matching /{pattern}/, observed {show(observed)}"
    text = str(observed).lower() if isinstance(observed, bool) else str(observed)
    if re.fullmatch(pattern, text) is not None:
        return True, None
    return False, f"expected a value matching /{pattern}/, observed {show(observed)}"


def op_contains(observed: Any, expect: Mapping[str, Any]) -> Result:
    wanted = expect.get("value")
    if isinstance(observed, str):
        ok = str(wanted) in observed
    elif isinstance(observed, (list, tuple)):
        ok = any(scalar_equal(item, wanted) for item in observed)
    elif isinstance(observed, dict):
        ok = str(wanted) in observed
    else:
        ok = False
    if ok:
        return True, None
    return False, f"expected to contain {show(wanted)}, observed {show(observed)}"


def op_absent(observed: Any, expect: Mapping[str, Any]) -> Result:
    if observed is None or (isinstance(observed, (str, list, tuple, dict)) and not observed):
        return True, None
    return False, f"expected nothing (absent), observed {show(observed)}"


def range_bounds(expect: Mapping[str, Any]) -> tuple[Any, Any]:
    """``(min, max)`` of a range expectation, from the keys or from a mapping in ``value``."""
    low, high = expect.get("min"), expect.get("max")
    value = expect.get("value")
    if low is None and high is None and isinstance(value, Mapping):
        low, high = value.get("min"), value.get("max")
    return low, high


def op_range(observed: Any, expect: Mapping[str, Any]) -> Result:
    low, high = range_bounds(expect)
    if low is None and high is None:
        raise ValueError("'range' needs min or max")
    number = to_number(observed)
    if number is None:
        return False, f"expected a number in {describe_range(low, high)}, observed {show(observed)}"
    for bound in (low, high):
        if bound is not None and to_number(bound) is None:
            raise ValueError(f"range bound {show(bound)} is not a number")
    if low is not None and number < to_number(low):  # type: ignore[operator]
        return False, f"expected {describe_range(low, high)}, observed {show(observed)} (below min)"
    if high is not None and number > to_number(high):  # type: ignore[operator]
        return False, f"expected {describe_range(low, high)}, observed {show(observed)} (above max)"
    return True, None


def describe_range(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high} (inclusive)"
    if low is not None:
        return f">= {low}"
    return f"<= {high}"


def compare_versions(left: str, right: str, scheme: str) -> int:
    """-1, 0 or 1 as ``left`` is older, equal or newer than ``right`` under ``scheme``.

    Raises:
        ValueError: a version is not valid under the scheme, or the scheme is unknown.
    """
    if scheme == "pep440":
        try:
            a, b = Pep440Version(left), Pep440Version(right)
        except InvalidVersion as exc:
            raise ValueError(f"not a PEP 440 version: {exc}") from None
        return (a > b) - (a < b)
    if scheme == "debian":
        try:
            da, db = DebianVersion(left), DebianVersion(right)
        except ValueError as exc:
            raise ValueError(f"not a Debian version: {exc}") from None
        return (da > db) - (da < db)
    if scheme == "rpm":
        result = int(rpm_vercmp(left, right))
        return (result > 0) - (result < 0)
    raise ValueError(f"unknown version scheme {scheme!r} (one of {', '.join(VERSION_SCHEMES)})")


_CMP: dict[str, Callable[[int], bool]] = {
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def op_version(observed: Any, expect: Mapping[str, Any]) -> Result:
    cmp = str(expect.get("cmp", ">="))
    scheme = str(expect.get("scheme", "pep440"))
    wanted = expect.get("value")
    if cmp not in _CMP:
        raise ValueError(f"unknown version comparison {cmp!r} (one of {' '.join(VERSION_CMPS)})")
    if wanted is None:
        raise ValueError("'version' needs a value")
    if observed is None or observed == "":
        return False, f"expected version {cmp} {wanted} ({scheme}), observed no version"
    try:
        result = compare_versions(str(observed), str(wanted), scheme)
    except ValueError as exc:
        return (
            False,
            f"expected version {cmp} {wanted} ({scheme}), observed {show(observed)}: {exc}",
        )
    if _CMP[cmp](result):
        return True, None
    return False, f"expected version {cmp} {wanted} ({scheme}), observed {show(observed)}"


def op_same_across_hosts(observed: Any, expect: Mapping[str, Any]) -> Result:
    raise ValueError("same_across_hosts compares hosts; evaluate it with compare_across()")


OPERATORS: dict[str, Callable[[Any, Mapping[str, Any]], Result]] = {
    "equals": op_equals,
    "in": op_in,
    "regex": op_regex,
    "contains": op_contains,
    "absent": op_absent,
    "range": op_range,
    "version": op_version,
    "same_across_hosts": op_same_across_hosts,
}


def apply(observed: Any, expect: Mapping[str, Any]) -> Result:
    """Apply the expectation's operator to the observed value.

    Raises:
        ValueError: the expectation itself is malformed (unknown op, missing value).
    """
    op = expect.get("op")
    if op not in OPERATORS:
        raise ValueError(f"unknown expectation op {op!r} (one of {', '.join(OPS)})")
    return OPERATORS[str(op)](observed, expect)


def validate_expect(expect: Mapping[str, Any]) -> str | None:
    """An error text for a malformed expectation (before value_from is resolved), or None."""
    op = expect.get("op")
    if op not in OPERATORS:
        return f"unknown op {op!r} (one of {', '.join(OPS)})"
    has_value = "value" in expect or "value_from" in expect
    if op in ("equals", "in", "regex", "contains") and not has_value:
        return f"op {op} needs value or value_from"
    if op == "in" and "value" in expect and not isinstance(expect["value"], (list, tuple)):
        return "op in needs a list as value"
    if op == "regex" and "value" in expect:
        try:
            re.compile(str(expect["value"]))
        except re.error as exc:
            return f"op regex: bad pattern: {exc}"
    if op == "range":
        low, high = range_bounds(expect)
        if low is None and high is None and "value_from" not in expect:
            return "op range needs min or max"
        for bound in (low, high):
            if bound is not None and to_number(bound) is None:
                return f"op range: bound {show(bound)} is not a number"
    if op == "version":
        if not has_value:
            return "op version needs value or value_from"
        if str(expect.get("cmp", ">=")) not in VERSION_CMPS:
            return f"op version: cmp must be one of {' '.join(VERSION_CMPS)}"
        if str(expect.get("scheme", "pep440")) not in VERSION_SCHEMES:
            return f"op version: scheme must be one of {', '.join(VERSION_SCHEMES)}"
    return None


def describe_expectation(expect: Mapping[str, Any]) -> str:
    """The acceptance rule in words, for evidence and reports, e.g. ``version >= 9.0 (debian)``."""
    op = expect.get("op")
    value = expect.get("value")
    source = f" (vqual_expected.{expect['value_from']})" if expect.get("value_from") else ""
    if op == "equals":
        text = f"equals {show(value)}"
    elif op == "in":
        text = f"one of {show(value)}"
    elif op == "regex":
        text = f"matches /{value}/"
    elif op == "contains":
        text = f"contains {show(value)}"
    elif op == "absent":
        text = "absent or empty"
    elif op == "range":
        text = describe_range(*range_bounds(expect))
    elif op == "version":
        text = f"version {expect.get('cmp', '>=')} {value} ({expect.get('scheme', 'pep440')})"
    elif op == "same_across_hosts":
        text = f"same on every host of {expect.get('group', 'cluster')}"
    else:
        text = f"unknown op {show(op)}"
    return text + source
