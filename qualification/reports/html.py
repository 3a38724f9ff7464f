"""The HTML report QA reads, and its PDF rendering.

Self-contained (inline CSS, no scripts, no external URLs) and autoescaped, so whatever a
target returned is shown as text. Deterministic: the same records and arguments give the same
bytes, because the copy rendered at ``run.end`` is sealed in the bundle. Paged-media CSS puts
the change id and "page x of y" in each printed page's header (WeasyPrint honours it).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from qualification.errors import BadInputError, MissingExtraError
from qualification.reports.matrix import (
    NOT_COVERED,
    ROW_EVIDENCE,
    ROW_NONE,
    ROW_PROCEDURE,
    ROW_SPEC,
    ROW_TEST,
    Row,
    requirements_of,
    rows_for,
)
from qualification.reports.model import VERDICTS, Records, Result, Run, load_run
from qualification.reports.trusted_time import trusted_time_text
from qualification.reports.values import show, show_duration, show_expected, show_raw, show_time
from qualification.verdict import Verdict

_TEMPLATES = Path(__file__).parent / "templates"
#: Observed values longer than this are cut in the report; the record keeps all of it.
_VALUE_LIMIT = 2000
_LABELS = {v.value: v.value.replace("-", " ").upper() for v in Verdict}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _verdict(verdict: str | None, deviation: str | None = None) -> dict[str, str]:
    """A verdict cell: text always (never colour alone) and a CSS class for the colour."""
    if verdict is None:
        return {"text": "NOT COVERED", "css": "v-none"}
    text = _LABELS.get(verdict, verdict.upper())
    if verdict == Verdict.WAIVED:
        text += f" ({deviation or 'deviation id missing'})"
    css = f"v-{verdict}" if verdict in VERDICTS else "v-error"
    return {"text": text, "css": css}


def _declared(
    start: Mapping[str, Any], spec_requirements: Mapping[str, str] | None
) -> tuple[list[str], dict[str, str]]:
    """Declared requirement ids and their texts: from the argument, else from run.start."""
    if spec_requirements is not None:
        return [str(k) for k in spec_requirements], {
            str(k): str(v) for k, v in spec_requirements.items()
        }
    ids: list[str] = []
    texts: dict[str, str] = {}
    declared = start.get("requirements") or ()
    if isinstance(declared, Mapping):
        declared = [{"id": k, "text": v} for k, v in declared.items()]
    for item in declared:
        if isinstance(item, Mapping):
            ident = str(item.get("id", ""))
            if item.get("text"):
                texts[ident] = str(item["text"])
        else:
            ident = str(item)
        if ident:
            ids.append(ident)
    return ids, texts


def _test_row(result: Result) -> dict[str, Any]:
    return {
        "id": result.test_id,
        # read back by `vqual verify` (qualification/evidence/agreement.py)
        "target": result.target,
        "verdict_value": result.verdict,
        "title": result.title,
        "requirements": ", ".join(result.requirements),
        "method": result.method,
        "raw": show_raw(result.raw, result.seq),
        "expected": "" if result.expected is None else show_expected(result.expected, _VALUE_LIMIT),
        "observed": show(result.observed, _VALUE_LIMIT) if result.recorded else "(no result)",
        "verdict": _verdict(result.verdict, result.deviation),
        "reason": result.reason or "",
        "time": show_time(result.started),
        "duration": show_duration(result.duration_ms),
    }


def _targets(run: Run) -> list[dict[str, Any]]:
    known = {t.name: t for t in run.targets}
    names = list(known) + [
        n for n in dict.fromkeys(r.target for r in run.results) if n not in known
    ]
    skipped = dict(run.skipped_hosts)
    out = []
    for name in names:
        target = known.get(name)
        out.append(
            {
                "name": name,
                "kinds": ", ".join(target.kinds) if target else "",
                "risk": (target.risk or "") if target else "",
                "risk_reason": (target.risk_reason or "") if target else "",
                "skipped": skipped.get(name, ""),
                "tests": [_test_row(r) for r in run.results if r.target == name],
            }
        )
    return out


def _digest(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("digest")
    return "" if value is None else str(value)


def _part(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A sub-object of a payload; an absent or malformed one reads as empty."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def _approval(start: Mapping[str, Any]) -> str | None:
    """The protocol approval ``run.start`` cites (docs/review.md), or None."""
    approval = _part(start, "approval")
    if not approval:
        return None
    keyid = str(approval.get("keyid") or "")[:16]
    return (
        f"approved by {approval.get('name')} at {show_time(approval.get('time'))} "
        f"(key {keyid}; approval sha256 {approval.get('digest')})"
    )


def _provenance(start: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a clone run or a rolling patch rests on, for the reviewer: the master bundle and
    its fingerprint (docs/clones.md), or the change file and the plan (docs/rolling-patch.md)."""
    rows: list[tuple[str, str]] = []
    clone = _part(start, "clone")
    if clone:
        master = f"{clone.get('master_change_id')}/{clone.get('master_run_id')}"
        rows.append((f"master bundle {master} (seal)", _digest(clone.get("master_seal"))))
        fingerprint = _part(clone, "master_fingerprint")
        rows.append((f"master fingerprint of {fingerprint.get('subject')}",
                     _digest(fingerprint.get("digest"))))
    patch = _part(start, "patch")
    if patch:
        change = _part(patch, "change")
        rows.append((f"change file {change.get('path') or ''}".strip(), _digest(change)))
        rows.append((f"rolling-patch plan of cluster {patch.get('cluster')}",
                     _digest(_part(patch, "plan").get("digest"))))
    return rows + _slices(start)


def _slices(start: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A slice's place in its sliced job, and the slices a join cites with their verdicts
    (docs/aap.md, "Job slicing")."""
    block = _part(start, "slice")
    rows = [(f"slice of parent {block.get('parent')}",
             f"{block.get('index')} of {block.get('count')}, job {block.get('job')}")] if block else []
    joins = start.get("joins")
    for j in joins if isinstance(joins, list) else ():
        if isinstance(j, Mapping):
            label = (f"joined slice {_part(j, 'slice').get('index')}: run {j.get('run')}, "
                     f"verdict {j.get('verdict')} (seal)")
            rows.append((label, _digest(j.get("seal"))))
    return rows


def _summary(run: Run) -> dict[str, Any]:
    start = run.start
    spec, clock, tool = (_part(start, key) for key in ("spec", "clock", "tool"))
    synchronized = clock.get("synchronized")
    if synchronized is True:
        clock_text = "synchronised"
    elif synchronized is False:
        clock_text = "NOT synchronised"
    else:
        clock_text = "unknown"
    details = ", ".join(str(clock[k]) for k in ("source", "detail") if clock.get(k))
    counts = run.counts()
    planned = start.get("planned") or ()
    return {
        "change_id": run.change_id,
        "run_id": run.run_id,
        "mode": str(start.get("mode") or ""),
        "spec": " ".join(str(spec[k]) for k in ("name", "version") if spec.get(k)),
        "initiator": run.initiator,
        "executor": run.actor,
        "started": show_time(run.started_at),
        "ended": show_time(run.ended_at),
        "finished": run.finished,
        "clock": clock_text + (f" ({details})" if details else ""),
        "tool": " ".join(str(tool[k]) for k in ("name", "version") if tool.get(k)),
        "approval": _approval(start),
        "digests": [
            ("spec", _digest(spec)),
            *[
                (f"data file {d.get('name') or d.get('path') or ''}".strip(), _digest(d))
                for d in start.get("data_files") or ()
                if isinstance(d, Mapping)
            ],
            ("inventory", _digest(start.get("inventory"))),
            ("trust store", _digest(start.get("trust"))),
            ("previous run of this change (seal)", _digest(start.get("prev_run_seal")) or "none"),
            *_provenance(start),
        ],
        "verdict": _verdict(run.verdict()),
        "counts": [(_LABELS[v], counts.get(v, 0)) for v in VERDICTS],
        "planned": len(planned) if isinstance(planned, Sequence) else 0,
        "executed": sum(counts.values()),
        "missing": [f"{r.test_id} on {r.target}: {r.reason}" for r in run.missing()],
    }


def _verification(
    verification: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, str | None]:
    if verification is None:
        return None, None
    seal = verification.get("seal") or verification.get("seal_digest")
    status = verification.get("status") or verification.get("outcome")
    if status is None and isinstance(verification.get("valid"), bool):
        status = "valid" if verification["valid"] else "invalid"
    items = [
        (str(key), show(verification[key], 500))
        for key in sorted(verification, key=str)
        if key not in ("status", "outcome", "seal", "seal_digest")
    ]
    return {"status": str(status or "unknown"), "items": items}, (str(seal) if seal else None)


def _signatures(run: Run, seal: str | None) -> list[dict[str, Any]]:
    blocks = []
    for sig in run.signatures:
        if seal is None or sig.seal is None:
            binding = sig.seal or ""
            binding_ok = None
        else:
            binding = sig.seal
            binding_ok = sig.seal == seal
        blocks.append(
            {
                "name": sig.name,
                "meaning": sig.meaning,
                "time": show_time(sig.time),
                "keyid": sig.keyid,
                "roles": ", ".join(sig.roles),
                "comment": sig.comment or "",
                "seal": binding,
                "seal_ok": binding_ok,
            }
        )
    return blocks


def _release(run: Run) -> str:
    decisions = [s for s in run.signatures if s.meaning in ("approved", "rejected")]
    if not decisions:
        return "pending: no approval signature"
    last = decisions[-1]
    return f"{last.meaning} by {last.name} at {show_time(last.time)}"


def _coverage(row: Row) -> str:
    """What covers a requirement when no test of this run does (text of the row kind)."""
    entry = row.coverage
    if row.kind == ROW_SPEC:
        return "S: covered by shipped spec " + ", ".join(row.other_specs)
    if row.kind == ROW_EVIDENCE and entry is not None:
        return "E: vqual's own evidence, the sealed `vqual selftest` checks " + ", ".join(
            entry.evidence
        )
    if row.kind == ROW_PROCEDURE and entry is not None and entry.procedure is not None:
        proc = entry.procedure
        return f"P: procedure {proc.sop} ({proc.document}, sha256 {proc.digest}); not a test result"
    return ""


def _matrix(run: Run, declared: Sequence[str], texts: Mapping[str, str]) -> list[dict[str, Any]]:
    """The traceability matrix: each requirement with its text, row kind and the tests that
    cover it (docs/spec.md, "Requirements file")."""
    spec = _part(run.start, "spec").get("name")
    return [
        {
            "requirement": row.requirement,
            "text": row.text or texts.get(row.requirement, ""),
            "declared": row.declared,
            "kind": row.kind,
            "kind_label": "none" if row.kind == ROW_NONE else row.kind,
            "tested": row.kind == ROW_TEST,
            "covered": row.status != NOT_COVERED,
            "status": row.status,
            "coverage": _coverage(row),
            "tests": [
                {
                    "test_id": t.test_id,
                    "target": t.target,
                    "verdict": _verdict(t.verdict, t.deviation),
                }
                for t in row.tests
            ],
            "deviations": ", ".join(row.deviations),
            # A waived requirement names the deviations that waived its tests.
            "verdict": _verdict(row.verdict, ", ".join(row.deviations) or None),
        }
        for row in rows_for(
            run.results, declared, requirements_of(run.start), str(spec) if spec else None
        )
    ]


def _actions(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "target": a.target,
            "before": show(a.before, _VALUE_LIMIT),
            "after": show(a.after, _VALUE_LIMIT),
            "verdict": _verdict(a.verdict or Verdict.ERROR.value),
            "reason": a.reason or "",
            "started": show_time(a.started),
            "finished": show_time(a.finished),
        }
        for a in run.actions
    ]


def _deviations(run: Run) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "source": d.source,
            "test": d.test_id or "",
            "target": d.target or "",
            "detail": d.detail or "",
            "time": show_time(d.time),
        }
        for d in run.deviations
    ]


def render_report(
    records: Records,
    *,
    verification: Mapping[str, Any] | None = None,
    spec_requirements: Mapping[str, str] | None = None,
    title: str | None = None,
) -> str:
    """The self-contained HTML report of a run's decoded records (docs/formats.md).

    Args:
        records: the run's decoded records, ``run.start`` first.
        verification: the verifier's outcome (``status``, ``seal``/``seal_digest`` and any
            other fields, shown as given), or None for the copy sealed with the run.
        spec_requirements: URS id -> requirement text, in the spec's order; else the ids in
            ``run.start``'s ``requirements``.
        title: the page title; default "Qualification report <change id> / <run id>".

    Raises:
        BadInputError: the records are not a run (no ``run.start``).
    """
    run = load_run(records)
    declared, texts = _declared(run.start, spec_requirements)
    verification_view, seal = _verification(verification)
    # Without a verifier's word, the seal is the run.end line's digest if the reader gave it.
    seal = seal or run.seal
    matrix = _matrix(run, declared, texts)
    template = _environment().get_template("report.html.j2")
    return template.render(
        title=title or f"Qualification report {run.change_id} / {run.run_id}",
        summary={**_summary(run), "trusted_time": trusted_time_text(run.start, records)},
        targets=_targets(run),
        target_list=[
            {
                "name": t.name,
                "kinds": ", ".join(t.kinds),
                "risk": t.risk or "",
                "risk_reason": t.risk_reason or "",
            }
            for t in run.targets
        ],
        actions=_actions(run),
        deviations=_deviations(run),
        matrix=matrix,
        not_covered=sum(1 for row in matrix if not row["covered"]),
        mapped=sum(1 for row in matrix if not row["covered"] and row["kind"] != ROW_NONE),
        verification=verification_view,
        seal=seal,
        signatures=_signatures(run, seal),
        release=_release(run),
    )


def render_pdf(html: str) -> bytes:
    """The report as PDF/A-3b, rendered by WeasyPrint (page headers from the print CSS).

    Raises:
        BadInputError: WeasyPrint is not installed.
    """
    try:
        import weasyprint
    except ImportError as exc:  # an optional renderer: say how to get it
        raise MissingExtraError("pdf") from exc
    with warnings.catch_warnings():
        # WeasyPrint leaves its bundled sRGB profile file open for PDF/A output; the leak is
        # theirs and harmless, and must not fail a -Werror run.
        warnings.simplefilter("ignore", ResourceWarning)
        pdf = weasyprint.HTML(string=html).write_pdf(pdf_variant="pdf/a-3b")
        gc.collect()
    if not isinstance(pdf, bytes):
        raise BadInputError("PDF rendering returned no document")
    return pdf
