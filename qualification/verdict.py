"""The verdict vocabulary (docs/formats.md, "Verdicts"): one enum for every layer.

A :class:`Verdict` is a ``str`` whose value is the on-disk spelling, so ``Verdict.PASS ==
"pass"`` and records, counts and exit codes keep their strings. Records store
``verdict.value`` (a plain ``str``): the canonical JSON encoder's fast path takes plain types
only.

This module imports nothing of vqual, so every layer (checks, evidence, reports, rollout) may
use it without importing another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Verdict(StrEnum):
    """A test's or a run's verdict."""

    PASS = "pass"
    FAIL = "fail"
    #: could not observe: host unreachable, platform error
    ERROR = "error"
    #: the step could not be performed, or was not; with the reason; never ``pass``
    NOT_EXECUTED = "not-executed"
    #: a failed test covered by an approved deviation, shown with its id
    WAIVED = "waived"

    @property
    def passed(self) -> bool:
        """``pass`` or ``waived``: what counts as passed for a run's outcome."""
        return self in (Verdict.PASS, Verdict.WAIVED)

    @classmethod
    def parse(cls, text: object) -> Verdict | None:
        """The verdict spelled ``text``, or None when it is not one."""
        if not isinstance(text, str):
            return None
        try:
            return cls(text)
        except ValueError:
            return None


#: Every verdict's on-disk spelling, in the order records list counts (``run.end`` ``counts``).
VERDICTS: tuple[str, ...] = tuple(v.value for v in Verdict)

#: Worst first, as docs/formats.md orders a run's overall verdict; ``waived`` ranks above
#: ``pass`` only so a summary shows that a deviation was needed.
WORST_FIRST: tuple[Verdict, ...] = (
    Verdict.FAIL,
    Verdict.ERROR,
    Verdict.NOT_EXECUTED,
    Verdict.WAIVED,
    Verdict.PASS,
)


_WORST_FIRST_SPELLED = tuple((v, v.value) for v in WORST_FIRST)


def zero_counts() -> dict[str, int]:
    """``{verdict: 0}`` for every verdict, in :data:`VERDICTS` order."""
    return {v: 0 for v in VERDICTS}


def worst(verdicts: Iterable[str]) -> Verdict:
    """The worst verdict present: fail > error > not-executed > waived > pass; ``pass`` when
    none (or none known) is present."""
    present = set(verdicts)
    # Looked up by the plain strings: str hashing, not the enum's (reports call this often).
    for verdict, spelled in _WORST_FIRST_SPELLED:
        if spelled in present:
            return verdict
    return Verdict.PASS


def overall(counts: Mapping[str, int]) -> Verdict:
    """A run's overall verdict from its counts: the worst present, ``waived`` counting as
    ``pass`` (docs/formats.md)."""
    found = worst(v for v, n in counts.items() if n)
    return Verdict.PASS if found is Verdict.WAIVED else found
