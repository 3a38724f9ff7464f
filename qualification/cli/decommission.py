"""``vqual decommission``: remove VMs with evidence (docs/conversion.md)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    progress_printer,
    read_passphrase,
    run_options,
    shipped_path,
    state_dir_option,
    vault_options,
)
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


@click.command()
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory with the VMs, their dependents and backup stores.")
@click.option("--limit", "targets", required=True, help="The VMs to remove (Ansible limit pattern).")
@click.option("-s", "--spec", default=Path("specs/decommission.yaml"), show_default=True,
              type=click.Path(path_type=Path), callback=shipped_path,
              help="The decommissioning protocol.")
@click.option("-c", "--change", "change_id", default=None,
              help="Change id of the decommissioning (required), e.g. CHG0012345.")
@click.option("--check-evidence", "check_evidence", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the targets' bundles are (default: --evidence-dir); each must verify.")
@run_options()
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.qualify/v1) on stdout.")
@vault_options
@state_dir_option
@domain_errors
def decommission(
    inventory: Path, targets: str, spec: Path, change_id: str | None,
    check_evidence: Path | None, key_file: Path | None, passphrase_fd: int | None,
    evidence_dir: Path, run_id: str | None, initiator: str | None, json_mode: bool,
    state_dir: Path | None, vault: VaultOptions,
) -> None:
    """Remove the VMs TARGETS through their platform, with evidence.

    Refused before any change, with the reason, while another host declares it depends on a
    target (vqual_depends_on), a bundle of a target does not verify (or there is none), or
    its backups are not observed retained in its backup store (vqual_backup_store, each
    backup with its recorded SHA-256, as many as vqual_backup_policy requires). Otherwise
    each VM is removed and observed gone, its disks deleted or retained as declared
    (vqual_decommission_storage); the bundle's run.start cites the bundles and backups.
    """
    from qualification.execution.decommission import run_decommission
    from qualification.execution.qualify import QualifyRequest

    state = resolve_state_dir(state_dir)
    summary = run_decommission(QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id,
        key_file=key_file or state / "keys" / "executor.pem",
        passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
        evidence_dir=evidence_dir, state_dir=state, run_id=run_id, limit=targets,
        initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        progress=progress_printer(json_mode), vault=vault,
    ), check_evidence or evidence_dir)
    if json_mode:
        click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
    sys.exit(summary.exit_code)
