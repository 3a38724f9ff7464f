"""``vqual decommission``: remove VMs with evidence (docs/conversion.md)."""

from __future__ import annotations

from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    echo_summary,
    playbook_run_options,
    progress_printer,
    run_identity,
    shipped_path,
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
@click.option("--check-evidence", "check_evidence", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the targets' bundles are (default: --evidence-dir); each must verify.")
@click.option("--server", "server", default=None, envvar="VQUAL_SERVER_URL", metavar="URL",
              help="Evidence server that must hold every bundle of the targets (default "
              "$VQUAL_SERVER_URL, then push_server in the state's config.yaml).")
@click.option("--no-server", is_flag=True, help="Do not ask an evidence server, whatever is "
              "configured.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With a server: file (mode 0600) holding a reader token; default "
              "$VQUAL_SERVER_TOKEN(_FILE).")
@playbook_run_options("vqual.qualify/v1", "Change id of the decommissioning")
@domain_errors
def decommission(
    inventory: Path, targets: str, spec: Path, check_evidence: Path | None, server: str | None,
    no_server: bool, token_file: Path | None, change_id: str | None, key_file: Path | None,
    passphrase_fd: int | None, evidence_dir: Path, run_id: str | None, initiator: str | None,
    json_mode: bool, forks: int | None, vault: VaultOptions, state_dir: Path | None,
) -> None:
    """Remove the VMs TARGETS through their platform, with evidence.

    Refused before any change, with the reason, while another host declares it depends on a
    target (vqual_depends_on), a bundle of a target does not verify (or there is none), the
    evidence server (when one is configured) does not hold each of them, or its backups are
    not observed retained in its backup store (vqual_backup_store, each backup with its
    recorded SHA-256, as many as vqual_backup_policy requires). Otherwise each VM is removed
    and observed gone, its disks deleted or retained as declared (vqual_decommission_storage);
    the bundle's run.start cites the bundles, the server and the backups.
    """
    from qualification.config import load_config
    from qualification.execution.decommission import run_decommission
    from qualification.execution.qualify import QualifyRequest

    state = resolve_state_dir(state_dir)
    url = None if no_server else server or load_config(state).push_server
    if url is not None:
        from qualification.server.client import HeldRuns

        url = HeldRuns(url, token_file).url  # a bad URL or no token: refused before the run
    echo_summary(run_decommission(QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id, evidence_dir=evidence_dir,
        run_id=run_id, limit=targets, progress=progress_printer(json_mode), vault=vault,
        forks=forks, **run_identity(state, key_file, passphrase_fd, initiator),
    ), check_evidence or evidence_dir, url, token_file), json_mode)
