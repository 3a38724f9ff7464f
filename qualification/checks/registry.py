"""The registry of check types: each check module registers its own when it is imported.

:mod:`qualification.checks` imports every built-in check module, and a platform plug-in's own
check types join when the platform registry loads it; both register here, below them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qualification.checks.base import Check
from qualification.errors import SpecError

_REGISTRY: dict[str, Check] = {}


def register(check: Check) -> None:
    """Add a check type. Registering another check under a taken name is a bug."""
    existing = _REGISTRY.get(check.name)
    if existing is not None and existing is not check:
        raise ValueError(f"check type {check.name!r} is already registered by {existing!r}")
    _REGISTRY[check.name] = check


def known_check_types() -> frozenset[str]:
    return frozenset(_REGISTRY)


def get_check(name: str) -> Check:
    """The check type called ``name``.

    Raises:
        SpecError: no such check type.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpecError(f"unknown check type {name!r} (known: {known})") from None


def validate_params(check: str, params: Mapping[str, Any]) -> str | None:
    """An error text for an unknown check type or bad parameters, or None if they are fine."""
    found = _REGISTRY.get(check)
    if found is None:
        return f"unknown check type {check!r}"
    if not isinstance(params, Mapping):
        return f"params of {check} must be a mapping"
    return found.validate_params(params)
