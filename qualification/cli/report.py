"""``vqual report``: render a current view of a bundle's report."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option, trust_root_options
from qualification.state import resolve_state_dir


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the rendering (default BUNDLE/views, outside the sealed set).")
@click.option("--pdf", is_flag=True, help="Also write a PDF.")
@trust_root_options
@state_dir_option
@domain_errors
def report(bundle: Path, out: Path | None, pdf: bool, trust_root: Path | None,
           legacy_trust: bool, state_dir: Path | None) -> None:
    """Render a current view of BUNDLE's report, with signatures added since it was sealed.

    The bundle is judged as `vqual verify` judges it, through the pinned trust root: one
    that does not verify, or a trust store the root does not vouch for, is refused (exit 1)
    and nothing is written.
    """
    from qualification.execution.verifying import render_current_report

    written, root = render_current_report(bundle, resolve_state_dir(state_dir), out=out,
                                          pdf=pdf, trust_root=trust_root, legacy=legacy_trust)
    for path in written:
        click.echo(str(path))
    click.echo(f"vqual: {root}", err=True)
