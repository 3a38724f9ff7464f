"""Change ids and run ids: both become path components of ``evidence/<change_id>/<run_id>/``.

A new run id is made from the time (:func:`qualification.timeutil.new_run_id`).

Whatever pattern a site configures for change ids, the safe-name rule of docs/formats.md also
applies, so no id can escape the evidence directory or name a hidden or special entry.
"""

from __future__ import annotations

import re

from qualification.errors import BadInputError, ChangeIdError

DEFAULT_CHANGE_PATTERN = r"^CHG[0-9]{7}$"

#: The safe-name rule (docs/formats.md): ASCII only, so look-alike letters and digits fail.
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_SAFE_NAME = re.compile(SAFE_NAME_PATTERN, re.ASCII)


def is_safe_name(value: str) -> bool:
    """True if ``value`` can be used as one path component (docs/formats.md safe-name rule)."""
    # fullmatch: `$` alone would also accept a trailing newline.
    return value not in (".", "..") and _SAFE_NAME.fullmatch(value) is not None


def validate_change_id(value: str | None, pattern: str = DEFAULT_CHANGE_PATTERN) -> str:
    """Return ``value`` if it is a usable change id, else raise.

    Args:
        value: the change id given by the user (``--change``), or None if none was given.
        pattern: the site's change id pattern (a regular expression matched against the
            whole value; ``\\d`` and ``\\w`` match ASCII only).

    Raises:
        ChangeIdError: missing, not matching ``pattern``, not a safe name, or ``pattern``
            is not a valid regular expression.
    """
    if value is None or value == "":
        raise ChangeIdError("a change id is required (--change CHG0012345)")
    try:
        compiled = re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise ChangeIdError(
            f"change id pattern {pattern!r} is not a valid regular expression: {exc}"
        )
    if compiled.fullmatch(value) is None:
        raise ChangeIdError(f"change id {value!r} does not match the pattern {pattern!r}")
    if not is_safe_name(value):
        raise ChangeIdError(
            f"change id {value!r} is not a safe name ({SAFE_NAME_PATTERN}, not '.' or '..')"
        )
    return value


def validate_run_id(value: str) -> str:
    """Return ``value`` if it is a usable run id (safe-name rule), else raise.

    Raises:
        BadInputError: empty or not a safe name.
    """
    if not value or not is_safe_name(value):
        raise BadInputError(
            f"run id {value!r} is not a safe name ({SAFE_NAME_PATTERN}, not '.' or '..')"
        )
    return value
