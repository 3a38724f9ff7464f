"""``vqual log check``: a bundle's seal and signatures in the evidence server's transparency log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option
from qualification.state import resolve_state_dir


@click.group("log")
def log() -> None:
    """The evidence server's transparency log."""


@log.command("check")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--server", "server_url", required=True, envvar="VQUAL_SERVER_URL",
              help="The evidence server's URL (or $VQUAL_SERVER_URL).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File (mode 0600) holding a reader token; default $VQUAL_SERVER_TOKEN.")
@state_dir_option
@domain_errors
def check(bundle: Path, server_url: str, token_file: Path | None, state_dir: Path | None) -> None:
    """Check that BUNDLE's seal and every signature after it are in the log, under a
    checkpoint signed by a trusted log key, and that the log is consistent with the last
    checkpoint this state directory saw. Exit 0 all hold; 1 otherwise (naming what)."""
    from qualification.server.client import Client, read_token
    from qualification.server.logcheck import check_log

    result = check_log(Client(server_url, read_token(token_file)), bundle,
                       resolve_state_dir(state_dir))
    click.echo("\n".join(result.lines(str(bundle))))
    sys.exit(1 if result.problems else 0)
