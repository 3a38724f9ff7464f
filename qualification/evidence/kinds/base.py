"""What a record kind declares (docs/formats.md, "Record kinds: the registry").

A kind is one module under ``qualification/evidence/kinds/`` holding one :class:`RecordKind`
subclass: its name, its payload type (a ``TypedDict`` of the record's ``data``), its
verification rule (:meth:`RecordKind.verify`, run by ``vqual verify`` for each of its
records in order), its report rows (:meth:`RecordKind.report_rows`, what the JUnit, HTML and
matrix renderers show) and its audit-trail line (:meth:`RecordKind.audit_line`, what
``vqual audit`` lists). The writer, the verifier, the report and the audit trail ask the
registry (:mod:`qualification.evidence.kinds`) instead of comparing kind strings.

Kinds see the verifier's state through :class:`ChainView` and records as mappings (the
docs/formats.md fields), so this package imports neither the verifier nor the renderers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from qualification.errors import BadInputError
from qualification.evidence.result import VerificationResult
from qualification.signing.trust import TrustStore

#: What the verifier keeps of a record in order to judge it: (where, kind, time, change id,
#: data) of waiver records and waived results, for :func:`judge_waivers`.
WaiverEntry = tuple[str, str, str, str, dict[str, Any]]


class ChainView(Protocol):
    """The verifier's state while it judges a bundle's records in order."""

    res: VerificationResult
    trust: TrustStore
    end_seen: bool
    planned: list[dict[str, Any]]
    #: the test ids run.start planned: a check.result for any other is refused
    planned_ids: set[str]
    done: set[tuple[Any, Any]]
    raw_refs: list[tuple[str, str, str]]  # (where, file, sha256)
    manifest_digest: str | None
    executor_identities: set[str]
    initiator: str | None
    waiver_entries: list[WaiverEntry]

    def problem(self, where: str, text: str) -> None:
        """Report a problem at ``where`` (``records.jsonl line N (seq S)``)."""


@dataclass(frozen=True)
class AuditLine:
    """What ``vqual audit`` lists for one record.

    ``who`` None means the holder of the key that signed the record; the audit trail adds
    time, change, run, target (the payload's ``target``), key id and source.
    """

    what: str
    detail: str
    who: str | None = None


@dataclass(frozen=True)
class Deviation:
    """A deviation as the records show it (a report row of three kinds).

    ``source`` is ``waived result`` (a ``check.result`` carrying a deviation id),
    ``raised`` or ``waiver`` (the ``deviation.raised`` / ``deviation.waiver`` records).
    """

    id: str
    source: str
    test_id: str | None
    target: str | None
    detail: str | None
    time: str | None


class RecordKind:
    """One record kind. Subclasses set the class attributes and override what they need.

    Attributes:
        name: the ``kind`` field's value.
        payload: the ``TypedDict`` of the record's ``data`` (docs/formats.md).
        appendable: written with ``BundleWriter.append`` (``run.end`` is written by
            ``seal()``, ``signature`` by ``append_signature()``).
        first: the run's first record, and only there (``run.start``).
        after_run_end: written after ``run.end`` (``signature``); every other kind before.
        verify_fields: the payload fields the verifier needs (None: all); the rest is
            dropped in the worker processes that check signatures, to send back less.
    """

    name: ClassVar[str]
    payload: ClassVar[type]
    appendable: ClassVar[bool] = True
    first: ClassVar[bool] = False
    after_run_end: ClassVar[bool] = False
    verify_fields: ClassVar[tuple[str, ...] | None] = ("target",)

    def signer_role(self, chain: ChainView, where: str, data: Mapping[str, Any]) -> str | None:
        """The trust-store role the signing key must hold (None: none applies; reported)."""
        return "executor"

    def verify(
        self,
        chain: ChainView,
        where: str,
        record: Mapping[str, Any],
        digest: str,
        keyid: str | None,
    ) -> None:
        """Judge one record of this kind, in record order; report with ``chain.problem``.

        ``record`` is the decoded record (its ``data`` cut to :attr:`verify_fields`);
        ``digest`` the SHA-256 of its line; ``keyid`` the key whose signature verified
        (None: it did not, already reported).
        """

    def report_rows(self, record: Mapping[str, Any]) -> Sequence[object]:
        """The report's rows for one record of this kind (none by default)."""
        return ()

    def audit_line(self, record: Mapping[str, Any], signer: str) -> AuditLine | None:
        """The audit trail's line for one record (None: not an act, not listed).

        ``signer`` is the printed name of the key that signed the record.
        """
        return None

    def slim(self, data: dict[str, Any]) -> dict[str, Any]:
        """The payload as the verifier keeps it (see :attr:`verify_fields`)."""
        if self.verify_fields is None:
            return data
        return {k: data.get(k) for k in self.verify_fields}


# ---------------------------------------------------------------- reading payloads


def text(value: Any) -> str:
    return "" if value is None else str(value)


def opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def data_of(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record's ``data``.

    Raises:
        BadInputError: the record has no data object.
    """
    data = record.get("data")
    if type(data) is not dict and not isinstance(data, Mapping):  # dict first: it is cheap
        raise BadInputError(
            f"record seq {record.get('seq')} ({record.get('kind')}) has no data object"
        )
    return data


def seq_of(record: Mapping[str, Any]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) else None


def deviation_id(value: Any) -> str | None:
    """A deviation reference as its id; the format stores the id, an object with ``id`` is
    read too."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return None if value in (None, "") else str(value)


def deviation_row(record: Mapping[str, Any], source: str) -> Deviation:
    """A ``deviation.*`` record as a report row; the obvious fields are read, others
    tolerated."""
    data = data_of(record)
    detail = next(
        (
            str(data[key])
            for key in ("description", "justification", "reason", "detail")
            if data.get(key)
        ),
        None,
    )
    return Deviation(
        id=text(data.get("id") or data.get("deviation_id") or "?"),
        source=source,
        test_id=opt_text(data.get("test_id")),
        target=opt_text(data.get("target")),
        detail=detail,
        time=opt_text(record.get("time")),
    )
