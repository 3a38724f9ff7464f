"""``vqual review``: review reports over many runs (``vqual review periodic``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option
from qualification.state import resolve_state_dir


@click.group()
def review() -> None:
    """Review reports over many runs, for QA."""


@review.command()
@click.option("--from", "since", required=True,
              help="Start of the period, UTC (YYYY-MM-DD or ISO 8601), inclusive.")
@click.option("--to", "until", required=True,
              help="End of the period, UTC (YYYY-MM-DD or ISO 8601), not included.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the report: FILE.pdf as PDF (the pdf extra), else HTML.")
@click.option("--evidence-dir", "evidence_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Root of evidence bundles (repeatable; default $VQUAL_EVIDENCE_DIR or "
              "./evidence if it exists).")
@state_dir_option
@domain_errors
def periodic(since: str, until: str, output: Path, evidence_dirs: tuple[Path, ...],
             state_dir: Path | None) -> None:
    """Write the periodic review report (Annex 11 s.11) of the runs started in a period."""
    from qualification.errors import BadInputError, VqualError
    from qualification.evidence.bundle import RECORDS
    from qualification.evidence.reader import read_bundle
    from qualification.reports.audit_review import parse_moment
    from qualification.reports.periodic import render_periodic, render_periodic_pdf
    from qualification.review.audit_trail import collect_events

    start, end = parse_moment(since, "--from"), parse_moment(until, "--to")
    if end <= start:
        raise BadInputError("--to must be after --from")
    roots = list(evidence_dirs)
    if not roots:
        default = Path(os.environ.get("VQUAL_EVIDENCE_DIR") or "evidence")
        roots = [default] if default.is_dir() else []
    runs, unreadable = [], []
    for root in roots:
        if not root.is_dir():
            raise BadInputError(f"evidence directory {root} does not exist")
        for records in sorted(root.glob(f"*/*/{RECORDS}")):
            try:
                runs.append(read_bundle(records.parent).records)
            except (VqualError, OSError, ValueError) as exc:  # an open item, not a crash
                unreadable.append(f"{records.parent}: {str(exc)[:200]}")
    events = [e.__dict__ for e in collect_events(resolve_state_dir(state_dir), roots, start, end)]
    kwargs = {"since": start, "until": end, "audit_events": events, "unreadable": unreadable}
    if output.suffix.lower() == ".pdf":
        output.write_bytes(render_periodic_pdf(runs, **kwargs))
    else:
        output.write_text(render_periodic(runs, **kwargs), encoding="utf-8")
    click.echo(f"periodic review of {len(runs)} bundles ({len(unreadable)} unreadable) "
               f"written to {output}")
