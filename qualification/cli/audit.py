"""``vqual audit``: who did what and when, for QA review."""

from __future__ import annotations

import os
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option
from qualification.state import resolve_state_dir


@click.command()
@click.option("--since", required=True,
              help="From this UTC date or time on (YYYY-MM-DD or ISO 8601).")
@click.option("--until", default=None, help="Up to (not including) this UTC date or time.")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--evidence-dir", "evidence_dirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Root of evidence bundles (repeatable; default $VQUAL_EVIDENCE_DIR or "
              "./evidence if it exists).")
@state_dir_option
@domain_errors
def audit(since: str, until: str | None, fmt: str, evidence_dirs: tuple[Path, ...],
          state_dir: Path | None) -> None:
    """List who did what and when, across bundles and the state directory, for QA review."""
    from qualification.review.audit_trail import collect_events, parse_since, render_events

    roots = list(evidence_dirs)
    if not roots:
        default = Path(os.environ.get("VQUAL_EVIDENCE_DIR") or "evidence")
        roots = [default] if default.is_dir() else []
    start = parse_since(since)
    end = parse_since(until, "--until") if until else None
    events = collect_events(resolve_state_dir(state_dir), roots, start, end)
    click.echo(render_events(events, fmt, start, end), nl=fmt != "csv")
