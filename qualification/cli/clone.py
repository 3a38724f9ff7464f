"""``vqual clone``: qualify clones of a qualified Master-VM by difference (docs/clones.md)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    forks_option,
    progress_printer,
    read_passphrase,
    run_options,
    shipped_path,
    state_dir_option,
    vault_options,
)
from qualification.errors import BadInputError
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


@click.command()
@click.option("--master-bundle", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The master's evidence bundle (default: clone.master.bundle in the spec).")
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory with the master and the clones.")
@click.option("-s", "--spec", required=True, type=click.Path(path_type=Path),
              callback=shipped_path,
              help="The Master-VM spec; its tests with scope clone are the reduced set.")
@click.option("-c", "--change", "change_id", default=None,
              help="Change id the run belongs to (required), e.g. CHG0012345.")
@click.option("--clones", default=None, metavar="HOSTS",
              help="Existing clones to qualify: inventory hosts or groups, comma-separated.")
@click.option("--create", type=int, default=None, metavar="N",
              help="Create N clones of the master first (stopped; only tests observed "
              "through the platform run on them).")
@click.option("--prefix", default=None,
              help="Names of created clones: PREFIX-1 .. PREFIX-N (default <master host>-clone).")
@click.option("--master-host", default=None,
              help="The master's inventory host (needed with --create).")
@click.option("--master-subject", default=None,
              help="The master's subject in the bundle (default: its only VM fingerprint).")
@run_options()
@click.option("--test", "tests", multiple=True, help="Only this test id (repeatable).")
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.qualify/v1 plus a master block).")
@forks_option
@vault_options
@state_dir_option
@domain_errors
def clone(
    master_bundle: Path | None, inventory: Path, spec: Path, change_id: str | None,
    clones: str | None, create: int | None, prefix: str | None, master_host: str | None,
    master_subject: str | None, key_file: Path | None, passphrase_fd: int | None,
    evidence_dir: Path, run_id: str | None, tests: tuple[str, ...], initiator: str | None,
    json_mode: bool, state_dir: Path | None, vault: VaultOptions, forks: int | None,
) -> None:
    """Qualify clones of a Master-VM against the master's fingerprint.

    The master bundle must verify (else exit 1), must have passed, must be approved where
    the spec requires it and must hold the master's fingerprint (else exit 2); nothing runs
    before that holds. Each clone runs the spec's clone-scope tests; every difference from
    the master outside the spec's allowed ones (identity, sizing ranges) fails, naming what,
    where, the master's and the clone's value. The clone run's run.start cites the master
    bundle's seal digest.
    """
    from qualification.baseline.clones import clone_names
    from qualification.execution.clone import CloneRequest, run_clone
    from qualification.execution.collection import collection_for_run

    collection_for_run()  # before a clone is created: the run needs a collection it matches
    state = resolve_state_dir(state_dir)
    created = None
    if create is not None:
        created = clone_names(create, prefix or f"{master_host or 'master'}-clone")
    if clones is not None and not [c for c in clones.split(",") if c.strip()]:
        raise BadInputError("--clones needs at least one host or group")
    summary, master = run_clone(
        CloneRequest(
            inventory=inventory,
            spec=spec,
            master_bundle=master_bundle,
            clones=[c.strip() for c in clones.split(",") if c.strip()] if clones else None,
            create=created,
            master_host=master_host,
            master_subject=master_subject,
            base={
                "change_id": change_id,
                "key_file": key_file or state / "keys" / "executor.pem",
                "passphrase_reader": lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
                "evidence_dir": evidence_dir,
                "state_dir": state,
                "initiator": initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
                "run_id": run_id,
                "tests": list(tests) or None,
                "progress": progress_printer(json_mode),
                "vault": vault,
                "forks": forks,
            },
        )
    )
    cited = {"bundle": master.bundle, "seal": master.seal, "subject": master.subject,
             "fingerprint_digest": master.fingerprint_digest, "created": created or []}
    if json_mode:
        click.echo(json.dumps({**summary.to_json(), "master": cited}, indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
        click.echo(f"  master:   {master.bundle} (seal {master.seal})")
        if created:
            click.echo(f"  created:  {', '.join(created)}")
    sys.exit(summary.exit_code)
