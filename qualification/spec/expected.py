"""An expected-values data file (``expected_values``, docs/spec.md): site values for
``value_from`` shared by every target of the spec, as ``vqual baseline capture`` writes them
from a reference host. A host's own ``vqual_expected`` key wins over the file's.

A captured file is ``status: draft``: a run uses it only once a protocol approval covers it
(whatever ``require_protocol_approval`` says), and the person who captured it cannot give that
approval (docs/review.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from qualification import yamlio
from qualification.errors import SpecError
from qualification.spec.model import DataFile

KIND = "ExpectedValues"
DRAFT = "draft"


@dataclass(frozen=True)
class ExpectedValues:
    """The file's ``values`` (the shape of ``vqual_expected``), whether it is a draft, and
    who captured it from which host (``captured``: by, at, host, spec, bundle; empty when the
    site wrote it by hand)."""

    name: str
    values: dict[str, Any] = field(hash=False)
    draft: bool
    captured: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def captured_by(self) -> str | None:
        who = self.captured.get("by")
        return str(who) if who else None

    def describe(self) -> str:
        """One line: the data file, and who captured it when from which host."""
        if not self.captured:
            return f"expected values {self.name}"
        return (f"expected values {self.name} (captured by {self.captured.get('by')} at "
                f"{self.captured.get('at')} from {self.captured.get('host')})")


def load_expected_values(data_file: DataFile) -> ExpectedValues:
    """Parse an expected-values file from the bytes the spec loaded.

    Raises:
        SpecError: not YAML, not ``kind: ExpectedValues``, or ``values`` is not a mapping.
    """
    where = str(data_file.path)
    try:
        doc = yamlio.safe_load(data_file.raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"(root): not a YAML expected-values file: {' '.join(str(exc).split())}",
                        where=where) from None
    if not isinstance(doc, Mapping) or doc.get("kind") != KIND or doc.get("apiVersion") != "vqual/v1":
        raise SpecError(f"(root): not an expected-values file (want apiVersion: vqual/v1, "
                        f"kind: {KIND})", where=where)
    unknown = sorted(set(doc) - {"apiVersion", "kind", "status", "captured", "values"})
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown field (allowed: apiVersion, captured, kind, "
                        "status, values)", where=where)
    status = doc.get("status")
    if status not in (None, DRAFT):
        raise SpecError(f"status: must be {DRAFT!r} or absent, not {status!r}", where=where)
    values, captured = doc.get("values"), doc.get("captured") or {}
    if not isinstance(values, Mapping) or not values:
        raise SpecError("values: must be a non-empty mapping of value_from keys", where=where)
    if not isinstance(captured, Mapping):
        raise SpecError("captured: must be a mapping", where=where)
    return ExpectedValues(data_file.name, dict(values), status == DRAFT, dict(captured))
