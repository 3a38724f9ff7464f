"""The outcome of verifying a bundle (:func:`qualification.evidence.verify.verify_bundle`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualification.errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EvidenceIncompleteError,
    EvidenceInvalidError,
)

VALID, INVALID, INCOMPLETE = "valid", "invalid", "incomplete"


@dataclass
class VerificationResult:
    """The outcome of :func:`verify_bundle`."""

    path: Path
    status: str  # "valid" | "invalid" | "incomplete"
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seal_digest: str | None = None
    change_id: str | None = None
    run_id: str | None = None
    records: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    planned: int = 0
    executed: int | None = None
    verdict: str | None = None
    planned_tests: list[dict[str, Any]] = field(default_factory=list)
    missing_tests: list[dict[str, Any]] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)
    trust_digest: str | None = None
    #: waived results not backed by an approver's valid waiver (also in ``problems``)
    waiver_problems: list[str] = field(default_factory=list)
    #: run.start's prev_run_seal: the seal of the run before this one of the change, or None
    prev_run_seal: str | None = None
    #: when run.start and run.end were written (order the runs of a change)
    started: str | None = None
    ended: str | None = None
    #: the bundle's format version (run.start's ``v``)
    format_version: int | None = None
    #: what the verified time-stamp tokens prove: seq and kind stamped, TSA, genTime
    trusted_time: list[dict[str, Any]] = field(default_factory=list)
    #: why the seal has no verified token (None: it has one)
    no_trusted_time: str | None = None

    @property
    def format_text(self) -> str:
        """The format as people are shown it; v1 is the legacy format."""
        if self.format_version is None:
            return "format unknown"
        legacy = " (legacy)" if self.format_version == 1 else ""
        return f"format v{self.format_version}{legacy}"

    @property
    def exit_code(self) -> int:
        return {VALID: EXIT_OK, INCOMPLETE: EXIT_INCOMPLETE}.get(self.status, EXIT_FAILED)

    def raise_for_status(self) -> None:
        """Raise the matching domain error unless the bundle is valid."""
        if self.status == INVALID:
            first = self.problems[0] if self.problems else "invalid"
            more = (
                f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            )
            raise EvidenceInvalidError(first + more, where=str(self.path))
        if self.status == INCOMPLETE:
            raise EvidenceIncompleteError(
                f"run did not finish; {len(self.missing_tests)} planned tests without a result",
                where=str(self.path),
            )
