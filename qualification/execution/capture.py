"""``vqual baseline capture``: a reference host's observed values as a draft expected-values
file (docs/spec.md, "Expected values").

The capture is a run of its own (mode ``capture``, under a change id, signed and verified):
the spec's ``value_from`` tests are observed on the one reference host without being judged
(verdict ``not-executed``, reason "observed for a baseline capture"). Each observed value
becomes the value its ``value_from`` key reads, in the shape the test's operator takes, and
the file is written ``status: draft`` naming who captured it, when, from which host and run.
A run refuses the draft until a protocol approval covers it, which its capturer cannot give
(``qualification.review``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from qualification.errors import BadInputError, PlatformError
from qualification.execution.qualify import QualifyRequest, QualifySummary, run_qualify
from qualification.execution.recorder import records_as_dicts
from qualification.spec import load_spec
from qualification.spec.expected import DRAFT, KIND
from qualification.timeutil import utc_now_text

SCHEMA = "vqual.baseline-capture/v1"


@dataclass
class CaptureSummary:
    """What a capture wrote: the file, the values, what could not be captured, and the run."""

    output: Path
    host: str
    values: dict[str, Any]
    skipped: list[str]
    run: QualifySummary
    spec: Path = field(default_factory=Path)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "output": str(self.output), "host": self.host,
            "captured": sorted(_keys(self.values)), "skipped": list(self.skipped),
            "status": DRAFT, "bundle": str(self.run.bundle), "seal": self.run.seal,
        }

    def to_text(self) -> str:
        lines = [
            (f"vqual: captured {len(_keys(self.values))} value(s) from {self.host} into "
            f"{self.output} (draft)"),
            f"  run:      {self.run.bundle} ({self.run.verification})",
            (f"  next:     name it under the spec's data_files and expected_values; an approver "
            f"other than the capturer runs `vqual sign {self.spec} --meaning approved`"),
        ]
        lines += [f"  skipped:  {s}" for s in self.skipped]
        return "\n".join(lines)


def _keys(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping) and not {"min", "max"} >= set(value):
            out += _keys(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def value_for(op: str, observed: Any) -> Any:
    """The value a ``value_from`` key gives for ``op`` so that ``observed`` meets it.

    Raises:
        ValueError: the operator or the observed value cannot be captured.
    """
    scalar = isinstance(observed, (str, int, float, bool))
    if observed is None:
        raise ValueError("nothing was observed")
    if op == "equals":
        return observed
    if op == "in":
        return [observed]
    if op == "regex" and scalar:
        return re.escape(str(observed))
    if op == "version" and scalar:
        return str(observed)
    if op == "range" and isinstance(observed, (int, float)) and not isinstance(observed, bool):
        return {"min": observed, "max": observed}
    raise ValueError(f"op {op!r} cannot take the observed value {observed!r} as its expectation")


def _put(values: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (dotted: nested mappings, as ``value_from`` reads it) unless already set."""
    *parents, last = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node.setdefault(last, value)


def captured_values(results: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """(values by ``value_from`` key, one line per test that could not be captured)."""
    values: dict[str, Any] = {}
    skipped: list[str] = []
    for result in results:
        expected = result.get("expected") or {}
        if not isinstance(expected, Mapping) or not expected.get("capture"):
            continue
        key = str(expected.get("value_from"))
        try:
            _put(values, key, value_for(str(expected.get("op")), result.get("observed")))
        except ValueError as exc:
            reason = result.get("reason") if result.get("verdict") == "error" else None
            skipped.append(f"{result.get('test_id')} ({key}): {reason or exc}")
    return values, skipped


def capture_baseline(request: QualifyRequest, host: str, output: Path) -> CaptureSummary:
    """Observe ``host`` for the spec's ``value_from`` tests and write the draft file.

    Raises:
        BadInputError: the output exists, the spec has no ``value_from`` test, or the run
            covered other hosts than ``host``.
        PlatformError: the capture run's bundle does not verify, or nothing was captured.
    """
    if output.exists():
        raise BadInputError(f"{output} exists: a capture never replaces a file; choose another")
    spec = load_spec(request.spec)
    tests = [t.id for t in spec.tests if t.expect.value_from is not None]
    if not tests:
        raise BadInputError(f"spec {spec.name} has no test whose expectation uses value_from")
    run = run_qualify(replace(request, limit=host, tests=tests,
                              extravars={**request.extravars, "vqual_mode": "capture"}))
    if run.verification != "valid":
        raise PlatformError(f"the capture run {run.bundle} is {run.verification}: nothing written")
    records = records_as_dicts(run.bundle)
    results = [r["data"] for r in records if r["kind"] == "check.result"]
    targets = sorted({str(r["target"]) for r in results})
    if targets != [host]:
        raise BadInputError(f"a capture observes one reference host: --limit {host} gave "
                            f"{', '.join(targets) or 'no host'}")
    values, skipped = captured_values(results)
    if not values:
        raise PlatformError(f"nothing could be captured from {host}: {'; '.join(skipped)}")
    document = {
        "apiVersion": "vqual/v1",
        "kind": KIND,
        "status": DRAFT,
        "captured": {
            "by": request.initiator, "at": utc_now_text(), "host": host,
            "spec": {"name": spec.name, "version": spec.version, "digest": spec.digest},
            "bundle": {"change_id": run.change_id, "run_id": run.run_id, "seal": run.seal},
        },
        "values": values,
    }
    header = ("# Captured by `vqual baseline capture`: a DRAFT. A run uses it only once the\n"
              "# protocol is approved with it, by an approver other than the capturer.\n")
    output.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return CaptureSummary(output, host, values, skipped, run, request.spec)
