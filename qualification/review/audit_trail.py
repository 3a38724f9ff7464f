"""``vqual audit``: who did what and when, across bundles and the state directory.

For QA's periodic review of the audit trail (Annex 11 section 9). Sources: every bundle under
an evidence root (runs, actions, skipped hosts, waivers used, run ends, signatures), and the
state directory (protocol approvals, deviation waivers, trust store key validity and
revocations, signed trust store versions with what changed, failed verifications from
``audit.log``). Signed documents are checked against
the trust store and listed either way, with what is wrong when they do not verify.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualification.audit import AUDIT_FILE
from qualification.errors import BadInputError, EvidenceInvalidError, VqualError
from qualification.evidence.bundle import RECORDS
from qualification.evidence.kinds import kind_of
from qualification.evidence.reader import read_bundle
from qualification.evidence.records import format_time
from qualification.evidence.verify import WAIVER_TYPE
from qualification.review.approval import APPROVAL_TYPE, APPROVALS_DIR
from qualification.review.deviations import DEVIATIONS_DIR, WAIVERS_DIR
from qualification.review.pinned import judged_trust
from qualification.review.signed import open_document
from qualification.review.trust_history import HISTORY_DIR, history
from qualification.signing import TrustStore
from qualification.signing.dsse import parse_envelope
from qualification.state import trust_path

#: What an audit lists when the pinned root does not vouch for the trust store.
REFUSED = "trust.refused"
COLUMNS = ("time", "who", "what", "change_id", "run_id", "target", "keyid", "detail", "source")
FORMATS = ("text", "csv", "json")


@dataclass(frozen=True)
class AuditEvent:
    time: str  # UTC, record form
    who: str
    what: str
    change_id: str
    run_id: str
    target: str
    keyid: str
    detail: str
    source: str


def parse_since(text: str, what: str = "--since") -> datetime:
    """A UTC moment from ``YYYY-MM-DD`` or an ISO 8601 time (UTC when it has no offset).

    Raises:
        BadInputError: not a date or time.
    """
    try:
        value = datetime.fromisoformat(text)  # 3.11+ reads a trailing Z
    except ValueError:
        raise BadInputError(f"{what} {text!r} is not a date or ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _name(trust: TrustStore | None, keyid: str) -> str:
    key = trust.get(keyid) if trust is not None else None
    if trust is None:
        return f"key {keyid[:16]} (no trust store vouched for)"
    return key.name if key is not None else f"key {keyid[:16]} (not in the trust store)"


def _bundle_events(
    path: Path, evidence_root: Path, trust: TrustStore | None
) -> Iterator[AuditEvent]:
    source = path.relative_to(evidence_root).as_posix()
    try:
        bundle = read_bundle(path)
    except VqualError as exc:
        mtime = datetime.fromtimestamp((path / RECORDS).stat().st_mtime, UTC)
        yield AuditEvent(
            format_time(mtime),
            "",
            "bundle.unreadable",
            path.parent.name,
            path.name,
            "",
            "",
            exc.one_line(),
            source,
        )
        return
    for rec in bundle.records:
        # Each kind says what it lists (qualification.evidence.kinds); check results are
        # outcomes, not acts: the report lists them.
        kind = kind_of(rec.kind)
        signer = _name(trust, rec.keyid)
        line = (
            kind.audit_line({"initiator": rec.initiator, "data": rec.data}, signer)
            if kind is not None
            else None
        )
        if line is None:
            continue
        yield AuditEvent(
            rec.time,
            signer if line.who is None else line.who,
            line.what,
            rec.change_id,
            rec.run_id,
            str(rec.data.get("target") or ""),
            rec.keyid,
            line.detail,
            source,
        )


def _document_events(
    state_dir: Path, pattern: str, payload_type: str, what: str, trust: TrustStore | None
) -> Iterator[AuditEvent]:
    for path in sorted(state_dir.glob(pattern)):
        rel = path.relative_to(state_dir).as_posix()
        try:
            raw = path.read_bytes()
            env = parse_envelope(raw.rstrip(b"\n"), where=rel)
            payload: Any = json.loads(env.payload)
            if not isinstance(payload, dict):
                raise BadInputError("payload is not an object", where=rel)
        except (VqualError, OSError, ValueError) as exc:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            text = exc.one_line() if isinstance(exc, VqualError) else str(exc)
            yield AuditEvent(
                format_time(mtime), "", f"{what}.unreadable", "", "", "", "", text, rel
            )
            continue
        status = "verifies"
        if trust is None:
            status = "NOT VERIFIED: no trust store vouched for"
        else:
            try:
                open_document(raw, payload_type, trust, "approver", where=rel)
            except VqualError as exc:
                status = f"DOES NOT VERIFY: {exc.message}"
        if what == "protocol.approved":
            spec = payload.get("spec") or {}
            detail = (
                f"{spec.get('name')} {spec.get('version')} (sha256 {str(spec.get('digest'))[:16]})"
            )
            change = ""
        else:
            dev = payload.get("deviation") or {}
            detail = f"{dev.get('id')}: {dev.get('test_id')} on {dev.get('target')} until {dev.get('expiry')}"
            change = str(payload.get("change_id") or "")
        if payload.get("comment"):
            detail += f"; comment: {payload.get('comment')}"
        yield AuditEvent(
            str(payload.get("time")),
            str(payload.get("name")),
            what,
            change,
            "",
            str((payload.get("deviation") or {}).get("target") or ""),
            str(payload.get("keyid")),
            f"{detail}; {status}",
            rel,
        )


def _trust_events(trust: TrustStore | None) -> Iterator[AuditEvent]:
    if trust is None:
        return
    for key in trust.keys.values():
        roles = ",".join(key.roles)
        yield AuditEvent(
            format_time(key.valid_from),
            key.name,
            "trust.key-valid-from",
            "",
            "",
            "",
            key.keyid,
            f"{key.identity} as {roles}",
            "trust.yaml",
        )
        for when, what in ((key.valid_until, "expires"), (key.revoked_at, "revoked")):
            if when is not None:
                yield AuditEvent(
                    format_time(when),
                    key.name,
                    f"trust.key-{what}",
                    "",
                    "",
                    "",
                    key.keyid,
                    key.identity,
                    "trust.yaml",
                )


def _trust_history_events(state_dir: Path) -> Iterator[AuditEvent]:
    # Listed as recorded; `vqual trust status` says whether the history holds.
    for version in history(state_dir):
        yield AuditEvent(
            version.time,
            version.signed_by,
            "trust.version-signed",
            "",
            "",
            "",
            version.keyid,
            f"version {version.version} (sha256 {version.digest[:16]}): "
            + ("; ".join(version.changes) or "no key changes"),
            f"{HISTORY_DIR}/v{version.version:04d}.sig.json",
        )


def _log_events(state_dir: Path) -> Iterator[AuditEvent]:
    path = state_dir / AUDIT_FILE
    if not path.exists():
        return
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            yield AuditEvent(
                "",
                "",
                "audit-log.unreadable",
                "",
                "",
                "",
                "",
                f"line {number} is not a JSON object",
                AUDIT_FILE,
            )
            continue
        why = entry.get("why") or []
        detail = f"{entry.get('bundle')}: {entry.get('status')}"
        if why:
            detail += f": {why[0]}" + (f" (and {len(why) - 1} more)" if len(why) > 1 else "")
        bundle = Path(str(entry.get("bundle") or ""))
        yield AuditEvent(
            str(entry.get("time") or ""),
            str(entry.get("who") or ""),
            str(entry.get("what") or ""),
            bundle.parent.name,
            bundle.name,
            "",
            "",
            detail,
            f"{AUDIT_FILE}:{number}",
        )


def collect_events(
    state_dir: Path,
    evidence_roots: list[Path],
    since: datetime,
    until: datetime | None = None,
    *,
    judged: AuditTrust | None = None,
) -> list[AuditEvent]:
    """Every event from ``since`` (inclusive) to ``until`` (exclusive), oldest first.

    Events whose time cannot be read (damaged files) are always listed, so damage is never
    filtered away. Signers and signed documents are judged with ``judged`` (default
    :func:`audit_trust` through the pin the environment names); a store the root does not
    vouch for is a ``trust.refused`` event, listed first, and then nothing is vouched for.

    Raises:
        BadInputError: see :func:`audit_trust`; an evidence root that does not exist.
    """
    judged = judged if judged is not None else audit_trust(state_dir)
    trust = judged.store
    events: list[AuditEvent] = list(judged.refused)
    for root in evidence_roots:
        if not root.is_dir():
            raise BadInputError(f"evidence directory {root} does not exist")
        for records in sorted(root.glob(f"*/*/{RECORDS}")):
            events.extend(_bundle_events(records.parent, root, trust))
    events.extend(
        _document_events(
            state_dir, f"{APPROVALS_DIR}/*/*.json", APPROVAL_TYPE, "protocol.approved", trust
        )
    )
    events.extend(
        _document_events(
            state_dir,
            f"{DEVIATIONS_DIR}/*/{WAIVERS_DIR}/*.json",
            WAIVER_TYPE,
            "deviation.approved",
            trust,
        )
    )
    events.extend(_trust_events(trust))
    events.extend(_trust_history_events(state_dir))
    events.extend(_log_events(state_dir))
    low, high = format_time(since), format_time(until) if until else None
    # Record-form times sort as text; an unreadable time sorts first and is always kept.
    kept = [
        e
        for e in events
        if not _is_time(e.time) or (e.time >= low and (high is None or e.time < high))
    ]
    return sorted(kept, key=lambda e: (e.time, e.source, e.what))


@dataclass(frozen=True)
class AuditTrust:
    """What the audit names signers from (None: no store, or refused), the refusal as an
    event, and the line naming the root (or legacy, or the refusal)."""

    store: TrustStore | None
    refused: tuple[AuditEvent, ...]
    text: str


def audit_trust(state_dir: Path, *, trust_root: Path | None = None,
                legacy: bool = False) -> AuditTrust:
    """The trust store the audit judges with: :func:`judged_trust`, as ``verify`` judges.

    Raises:
        BadInputError: a trust store but no trust root pinned (and no legacy trust asked
            for), or a pin refused.
    """
    if not trust_path(state_dir).exists():
        return AuditTrust(None, (), "no trust store: no signer is vouched for")
    try:
        choice = judged_trust(state_dir, trust_root=trust_root, legacy=legacy)
    except EvidenceInvalidError as exc:
        text = f"{exc.message}; no signer below is vouched for"
        # No time: always listed, and first (record-form times sort after the empty text).
        return AuditTrust(None, (AuditEvent("", "", REFUSED, "", "", "", "", text,
                                            "trust.yaml"),), text)
    return AuditTrust(choice.store, (), choice.describe())


def _is_time(text: str) -> bool:
    try:
        parse_since(text)
    except BadInputError:
        return False
    return True


def render_events(
    events: list[AuditEvent], fmt: str, since: datetime, until: datetime | None
) -> str:
    """``text`` (a table for people), ``csv`` (RFC 4180, header row) or ``json``."""
    if fmt == "json":
        return json.dumps(
            {
                "schema": "vqual.audit/v1",
                "since": format_time(since),
                "until": format_time(until) if until else None,
                "events": [asdict(e) for e in events],
            },
            indent=2,
            ensure_ascii=False,
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for e in events:
            writer.writerow([getattr(e, c) for c in COLUMNS])
        return out.getvalue()
    if fmt != "text":
        raise BadInputError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    lines = [f"{len(events)} events since {format_time(since)}"]
    for e in events:
        where = "/".join(p for p in (e.change_id, e.run_id) if p)
        lines.append(f"{e.time}  {e.what:24} {e.who:24} {where} {e.target} {e.detail}".rstrip())
    return "\n".join(lines)
