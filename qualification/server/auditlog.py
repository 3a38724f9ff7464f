"""The audit trail exported: filtered by time, account, action and run, as JSON or CSV.

Both ``GET /api/v1/audit`` and ``vqual serve audit`` use :func:`query`; times are UTC in the
form the server writes them (``2026-03-01T10:00:00.000000Z``), and a filter may give a date
(``2026-03-01``) or a time with seconds (``2026-03-01T10:00:00Z``): ``from`` is inclusive,
``to`` exclusive.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qualification.errors import BadInputError
from qualification.server import db
from qualification.timeutil import parse_utc, utc_text

COLUMNS = ("id", "time", "who", "action", "run_id", "outcome", "detail")
#: Most rows one export returns (newest first); narrow the filters for more.
MAX_ROWS = 100_000
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2}))?")
# A CSV cell a spreadsheet would run as a formula (OWASP's CSV injection).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditFilter:
    start: str | None = None  # inclusive, as stored text
    end: str | None = None  # exclusive
    who: str | None = None
    action: str | None = None
    run_id: str | None = None
    limit: int = MAX_ROWS


def _time_bound(text: str | None, name: str) -> str | None:
    if not text:
        return None
    if not _TIME.fullmatch(text):
        raise BadInputError(f"{name} must be a UTC date or time (2026-03-01 or "
                            f"2026-03-01T10:00:00Z), not {text[:40]!r}")
    try:
        moment = parse_utc(text if "T" in text else f"{text}T00:00:00Z")
    except ValueError:
        raise BadInputError(f"{name} {text[:40]!r} is not a valid date or time") from None
    return utc_text(moment)


def make_filter(start: str | None = None, end: str | None = None, who: str | None = None,
                action: str | None = None, run_id: str | None = None,
                limit: str | int | None = None) -> AuditFilter:
    """A filter from query parameters or options.

    Raises:
        BadInputError: a malformed time or limit.
    """
    if limit is None or limit == "":
        rows = MAX_ROWS
    elif isinstance(limit, int) or limit.isdigit():
        rows = min(int(limit), MAX_ROWS)
    else:
        raise BadInputError("limit must be a whole number")
    return AuditFilter(_time_bound(start, "from"), _time_bound(end, "to"),
                       (who or None) and who[:64], (action or None) and action[:32],
                       (run_id or None) and run_id[:64], rows)


def query(engine: Engine, wanted: AuditFilter) -> list[dict[str, Any]]:
    """The audit rows ``wanted`` selects, newest first."""
    table = db.audit
    select = sa.select(table).order_by(table.c.id.desc()).limit(wanted.limit)
    if wanted.start:
        select = select.where(table.c.time >= wanted.start)
    if wanted.end:
        select = select.where(table.c.time < wanted.end)
    for column, value in ((table.c.who, wanted.who), (table.c.action, wanted.action),
                          (table.c.run_id, wanted.run_id)):
        if value:
            select = select.where(column == value)
    with db.read_tx(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(select)]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (a header, then one line a row); cells a spreadsheet would take for a
    formula are prefixed with ``'``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in COLUMNS])
    return out.getvalue()

