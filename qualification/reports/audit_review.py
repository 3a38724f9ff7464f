"""The audit-trail review (Annex 11 section 9): filter, show, export.

Takes audit events as mappings from any source: ``vqual audit``'s events (``what``), the
evidence server's audit table (``action``, ``outcome``), a login or a signature in the web
audit trail. Each is read into the same columns; a filter keeps what QA asks for; the result
is shown as an autoescaped table or exported as CSV (RFC 4180, header row) or JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from qualification.errors import BadInputError

COLUMNS = ("time", "who", "action", "change_id", "run_id", "target", "outcome", "detail",
           "source")
EXPORTS = ("csv", "json")
#: The JSON export's schema name.
SCHEMA = "vqual.audit-review/v1"


def parse_moment(text: str, what: str) -> datetime:
    """A UTC moment from ``YYYY-MM-DD`` or ISO 8601 (UTC when it has no offset).

    Raises:
        BadInputError: not a date or time.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInputError(f"{what} {text[:40]!r} is not a date or ISO 8601 time") from None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


def _moment(text: str) -> datetime | None:
    try:
        return parse_moment(text, "time") if text else None
    except BadInputError:
        return None


@dataclass(frozen=True)
class AuditFilter:
    """What the reviewer asked for; empty fields do not filter.

    ``who`` and ``action`` match a part of the value (case-insensitive); ``change`` is a
    change id or run id, matched exactly.
    """

    since: datetime | None = None
    until: datetime | None = None
    who: str = ""
    action: str = ""
    change: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> AuditFilter:
        """From query parameters ``since``, ``until``, ``who``, ``action``, ``change``."""
        since, until = query.get("since", "").strip(), query.get("until", "").strip()
        return cls(
            since=parse_moment(since, "since") if since else None,
            until=parse_moment(until, "until") if until else None,
            who=query.get("who", "").strip()[:200],
            action=query.get("action", "").strip()[:200],
            change=query.get("change", "").strip()[:200],
        )

    def matches(self, row: Mapping[str, str]) -> bool:
        when = _moment(row["time"])
        # An event whose time cannot be read is always kept: damage is never filtered away.
        if when is not None and (
            (self.since is not None and when < self.since)
            or (self.until is not None and when >= self.until)
        ):
            return False
        if self.who and self.who.lower() not in row["who"].lower():
            return False
        if self.action and self.action.lower() not in row["action"].lower():
            return False
        return not self.change or self.change in (row["change_id"], row["run_id"])

    def to_json(self) -> dict[str, str | None]:
        out = asdict(self)
        for key in ("since", "until"):
            out[key] = out[key].isoformat().replace("+00:00", "Z") if out[key] else None
        return out


def normalise(row: Mapping[str, Any], source: str = "") -> dict[str, str]:
    """An event in the review's columns (``what`` is read as ``action``)."""
    out = {c: "" if row.get(c) is None else str(row.get(c)) for c in COLUMNS}
    if not out["action"] and row.get("what") is not None:
        out["action"] = str(row["what"])
    if not out["source"]:
        out["source"] = source
    return out


def review(rows: Iterable[Mapping[str, Any]], flt: AuditFilter) -> list[dict[str, str]]:
    """The events ``flt`` keeps, oldest first."""
    kept = [r for r in (normalise(x) for x in rows) if flt.matches(r)]
    return sorted(kept, key=lambda r: (r["time"], r["source"], r["action"]))


def export(rows: Sequence[Mapping[str, str]], fmt: str, flt: AuditFilter) -> str:
    """The events as ``csv`` or ``json`` (with the filter that chose them).

    Raises:
        BadInputError: another format.
    """
    if fmt == "json":
        return json.dumps({"schema": SCHEMA, "filter": flt.to_json(),
                           "events": [{c: r[c] for c in COLUMNS} for r in rows]},
                          indent=2, ensure_ascii=False)
    if fmt != "csv":
        raise BadInputError(f"export format {fmt[:20]!r} is not one of {', '.join(EXPORTS)}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for r in rows:
        # A cell starting with = + - @ is text, not a formula, in a spreadsheet (CSV injection).
        writer.writerow(["'" + r[c] if r[c][:1] in ("=", "+", "-", "@") else r[c]
                         for c in COLUMNS])
    return out.getvalue()


def render_audit_fragment(rows: Sequence[Mapping[str, str]], flt: AuditFilter) -> Markup:
    """The events as an autoescaped HTML table with the filter named above it."""
    from qualification.reports.html import _environment

    template = _environment().get_template("audit_review.html.j2")
    return Markup(template.render(rows=rows, columns=COLUMNS, filter=flt.to_json()))


__all__ = ["COLUMNS", "EXPORTS", "SCHEMA", "AuditFilter", "export", "normalise",
           "parse_moment", "render_audit_fragment", "review"]
