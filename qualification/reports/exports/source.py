"""What every export reads from a bundle: the verified run, its spec's tests, its sealed files.

:func:`load_source` verifies the bundle against the trust store first and refuses one that is
not valid (an export of evidence nobody can trust would look trustworthy), then reads it
through the evidence reader and arranges the records with :func:`reports.model.load_run`,
the same reading the JUnit and HTML renderings use, so every format agrees on what ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qualification import __version__, yamlio
from qualification.errors import EvidenceInvalidError
from qualification.evidence.bundle import MANIFEST
from qualification.evidence.reader import read_bundle
from qualification.evidence.verify import verify_bundle
from qualification.reports.model import VERDICTS, Records, Result, Run, load_run
from qualification.signing import TrustStore

#: The kind of the records that copy an approver's waiver into the bundle (docs/review.md).
WAIVER_KIND = "deviation.waiver"
#: The bundle's copy of the spec that ran (docs/formats.md); run.start names the original.
SPEC_COPY = "spec.yaml"


@dataclass(frozen=True)
class SpecTest:
    """A test of the spec that ran, as the bundle's copy of the spec states it."""

    id: str
    title: str
    protocol: str
    acceptance: str
    requirements: tuple[str, ...]
    check: str


@dataclass(frozen=True)
class Waiver:
    """An approved deviation the bundle carries (its ``deviation.waiver`` record)."""

    id: str
    justification: str
    expiry: str | None
    approved_by: str
    approved_at: str | None


@dataclass(frozen=True)
class SealedFile:
    """A file of the sealed set: ``manifest.json`` and every file it lists."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ExportSource:
    """A verified, sealed run, arranged for the exports."""

    run: Run
    tests: tuple[SpecTest, ...]
    waivers: Mapping[str, Waiver]
    sealed: tuple[SealedFile, ...]
    seal: str
    spec: Mapping[str, Any]
    tool_version: str

    @property
    def results(self) -> tuple[Result, ...]:
        """Every result; a planned test without one is an ``error`` (as in JUnit and HTML)."""
        return self.run.results

    def counts(self) -> dict[str, int]:
        """Verdict counts over :attr:`results`, every verdict present (zero if none)."""
        return verdict_counts(self.results)

    def test(self, test_id: str) -> SpecTest | None:
        return next((t for t in self.tests if t.id == test_id), None)


def verdict_counts(results: Iterable[Result]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    return counts


def result_name(result: Result) -> str:
    """A result's name in the exports: ``<test id>@<target>``, unique within a run."""
    return f"{result.test_id}@{result.target}"


def load_source(path: Path, trust: TrustStore) -> ExportSource:
    """Verify the bundle at ``path`` against ``trust`` and read it for exporting.

    Raises:
        EvidenceInvalidError: the bundle does not verify (exit 1).
        EvidenceIncompleteError: the run did not finish (exit 3): there is no seal to export.
    """
    verification = verify_bundle(path, trust)
    verification.raise_for_status()
    bundle = read_bundle(path)
    end = bundle.run_end
    if end is None or bundle.manifest is None:  # a verified, sealed bundle has both
        raise EvidenceInvalidError("the bundle has no seal", where=str(path))
    # manifest.json is sealed by its digest in run.end; the files it lists by theirs.
    sealed = [SealedFile(MANIFEST, str(end.data.get("manifest_digest")))]
    sealed += [SealedFile(p, d) for p, d in sorted(bundle.manifest.items())]
    spec_doc: Any = None
    if SPEC_COPY in bundle.manifest:
        try:
            spec_doc = yamlio.safe_load(bundle.read_file(SPEC_COPY))
        except (OSError, yaml.YAMLError):
            spec_doc = None  # sealed and verified, yet unreadable: rules come from the results
    return arrange(bundle.records, spec_doc=spec_doc, sealed=sealed, seal=end.digest)


def arrange(
    records: Records, *, spec_doc: Any, sealed: Sequence[SealedFile], seal: str
) -> ExportSource:
    """An :class:`ExportSource` from a run's decoded records (pure: reads no file).

    Args:
        records: the run's decoded records, as :func:`reports.model.load_run` takes them.
        spec_doc: the bundle's copy of the spec, parsed (None when there is none).
        sealed: the sealed files with their SHA-256 digests.
        seal: the seal digest (SHA-256 of the ``run.end`` line).
    """
    run = load_run(records)
    spec = run.start.get("spec")
    tool = run.start.get("tool")
    version = tool.get("version") if isinstance(tool, Mapping) else None
    return ExportSource(
        run=run,
        tests=_spec_tests(spec_doc, run.results),
        waivers=_waivers(records),
        sealed=tuple(sealed),
        seal=seal,
        spec=spec if isinstance(spec, Mapping) else {},
        tool_version=str(version or __version__),
    )


def _waivers(records: Records) -> dict[str, Waiver]:
    found: dict[str, Waiver] = {}
    for record in records:
        kind = record.get("kind") if isinstance(record, Mapping) else record.kind
        if kind != WAIVER_KIND:
            continue
        data = record.get("data") if isinstance(record, Mapping) else record.data
        if not isinstance(data, Mapping):
            continue
        approver = data.get("approved_by")
        who = approver if isinstance(approver, Mapping) else {}
        dev_id = str(data.get("id") or "")
        found[dev_id] = Waiver(
            id=dev_id,
            justification=str(data.get("justification") or ""),
            expiry=_opt(data.get("expiry")),
            approved_by=str(who.get("name") or ""),
            approved_at=_opt(who.get("time")),
        )
    return found


def _spec_tests(spec_doc: Any, results: Iterable[Result]) -> tuple[SpecTest, ...]:
    """The spec's tests that have a result, in spec order; results' own titles fill gaps."""
    ran = {r.test_id: r for r in results}
    declared: list[Mapping[str, Any]] = []
    if isinstance(spec_doc, Mapping) and isinstance(spec_doc.get("tests"), list):
        declared = [t for t in spec_doc["tests"] if isinstance(t, Mapping)]
    tests: dict[str, SpecTest] = {}
    for entry in declared:
        test_id = str(entry.get("id") or "")
        if test_id in ran and test_id not in tests:
            tests[test_id] = _spec_test(entry, ran[test_id])
    for test_id, result in ran.items():
        if test_id not in tests:
            tests[test_id] = _spec_test({}, result)
    return tuple(tests.values())


def _spec_test(entry: Mapping[str, Any], result: Result) -> SpecTest:
    requirements = entry.get("requirements")
    return SpecTest(
        id=result.test_id,
        title=str(entry.get("title") or result.title or result.test_id),
        protocol=str(entry.get("protocol") or result.protocol),
        acceptance=str(entry.get("acceptance") or ""),
        requirements=tuple(str(r) for r in requirements)
        if isinstance(requirements, list)
        else result.requirements,
        check=str(entry.get("check") or result.check),
    )


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
