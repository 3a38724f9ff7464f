"""YAML read with libyaml's C parser where PyYAML has it (VQ-95): specs and their data files
are read on every run, and the C parser is several times faster than the pure-Python one
with the same safe constructors and resolver (the same data, tests/unit/test_yamlio.py).
Falls back to the pure-Python parser when PyYAML was built without libyaml."""

from __future__ import annotations

from typing import Any

import yaml

#: The safe loader to use: ``CSafeLoader`` when libyaml is there, else ``SafeLoader``.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str | bytes) -> Any:
    """``yaml.safe_load`` with the C parser when there is one (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=SAFE_LOADER)
