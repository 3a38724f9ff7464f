"""``vqual audit``: who did what and when, for QA review."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option, trust_root_options
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
@trust_root_options
@state_dir_option
@domain_errors
def audit(since: str, until: str | None, fmt: str, evidence_dirs: tuple[Path, ...],
          trust_root: Path | None, legacy_trust: bool, state_dir: Path | None) -> None:
    """List who did what and when, across bundles and the state directory, for QA review.

    Signers and signed documents are judged through the pinned trust root, as `vqual verify`
    judges them. A trust store the root does not vouch for is listed first (trust.refused),
    nothing is shown as vouched for, and the exit code is 1.
    """
    from qualification.review.audit_trail import (
        audit_trust,
        collect_events,
        parse_since,
        render_events,
    )

    roots = list(evidence_dirs)
    if not roots:
        default = Path(os.environ.get("VQUAL_EVIDENCE_DIR") or "evidence")
        roots = [default] if default.is_dir() else []
    start = parse_since(since)
    end = parse_since(until, "--until") if until else None
    state = resolve_state_dir(state_dir)
    judged = audit_trust(state, trust_root=trust_root, legacy=legacy_trust)
    events = collect_events(state, roots, start, end, judged=judged)
    click.echo(render_events(events, fmt, start, end), nl=fmt != "csv")
    click.echo(f"vqual: {judged.text}", err=True)
    if judged.refused:
        sys.exit(1)
