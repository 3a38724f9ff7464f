"""``vqual baseline capture``: a reference host's observed values as a draft expected-values
file for a spec (docs/spec.md, "Expected values")."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    playbook_run_options,
    progress_printer,
    run_identity,
    shipped_path,
)
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


@click.group()
def baseline() -> None:
    """Baselines from live systems: expected values captured from a reference host."""


@baseline.command()
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory (file or directory).")
@click.option("--limit", "host", required=True, help="The one reference host to observe.")
@click.option("-s", "--spec", required=True, type=click.Path(path_type=Path),
              callback=shipped_path, help="Spec whose value_from tests are observed.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The expected-values file to write (never replaced).")
@playbook_run_options("vqual.baseline-capture/v1", "Change id the capture run belongs to")
@domain_errors
def capture(
    inventory: Path, host: str, spec: Path, output: Path, change_id: str | None,
    key_file: Path | None, passphrase_fd: int | None, evidence_dir: Path, run_id: str | None,
    initiator: str | None, json_mode: bool, forks: int | None, vault: VaultOptions,
    state_dir: Path | None,
) -> None:
    """Observe HOST for SPEC's value_from tests and write their values as a draft file.

    The capture is a signed run of its own; the file names who captured it, from which host
    and run. A run refuses the draft until the protocol is approved with it, by an approver
    other than the capturer.
    """
    from qualification.execution.capture import capture_baseline
    from qualification.execution.qualify import QualifyRequest

    state = resolve_state_dir(state_dir)
    request = QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id, evidence_dir=evidence_dir,
        run_id=run_id, progress=progress_printer(json_mode), vault=vault, forks=forks,
        **run_identity(state, key_file, passphrase_fd, initiator),
    )
    summary = capture_baseline(request, host, output)
    if json_mode:
        click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
    sys.exit(0)
