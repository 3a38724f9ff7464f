"""``vqual report``: render a current view of a bundle's report."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option
from qualification.state import resolve_state_dir


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the rendering (default BUNDLE/views, outside the sealed set).")
@click.option("--pdf", is_flag=True, help="Also write a PDF.")
@state_dir_option
@domain_errors
def report(bundle: Path, out: Path | None, pdf: bool, state_dir: Path | None) -> None:
    """Render a current view of BUNDLE's report, with signatures added since it was sealed."""
    from qualification.execution.verifying import render_current_report

    for path in render_current_report(bundle, resolve_state_dir(state_dir), out=out, pdf=pdf):
        click.echo(str(path))
