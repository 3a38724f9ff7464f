"""``vqual migrate``: a platform migration's summary run (docs/conversion.md, "Migrating a
platform")."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    passphrase_fd_option,
    read_passphrase,
    state_dir_option,
)
from qualification.state import resolve_state_dir


@click.group()
def migrate() -> None:
    """A migration of VMs from one platform to another, summed up with evidence."""


@migrate.command("summary")
@click.argument("change_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--vm", "vms", multiple=True, required=True, metavar="SOURCE=TARGET",
              help="A migrated VM: its source and its conversion target (inventory names); "
              "repeat for each VM.")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
              envvar="VQUAL_KEY_FILE",
              help="Executor's signing key ($VQUAL_KEY_FILE); default <state dir>/keys/executor.pem.")
@passphrase_fd_option()
@click.option("--run-id", default=None, help="Run id (default: UTC time and a random suffix).")
@click.option("--initiator", default=None,
              help="Person or pipeline user who started the run (default: $VQUAL_INITIATOR or "
              "the login user).")
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.migration/v1) on stdout.")
@state_dir_option
@domain_errors
def summary(
    change_dir: Path, vms: tuple[str, ...], key_file: Path | None, passphrase_fd: int | None,
    run_id: str | None, initiator: str | None, json_mode: bool, state_dir: Path | None,
) -> None:
    """Verify CHANGE_DIR (evidence/<change id>) and write the migration's summary run, citing
    for each VM its baseline, conversion and decommissioning runs by their seals.

    Refused (nothing written) when the change does not verify or a VM has no sealed
    conversion (or its baseline is not in the change). Exit code: the worst verdict of the
    cited runs; 3 while a source is not decommissioned.
    """
    from qualification.execution.migration import (
        MigrationRequest,
        parse_vm,
        run_migration_summary,
    )

    state = resolve_state_dir(state_dir)
    result = run_migration_summary(MigrationRequest(
        change_dir=change_dir, vms=[parse_vm(v) for v in vms],
        key_file=key_file or state / "keys" / "executor.pem",
        passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
        state_dir=state,
        initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        run_id=run_id,
    ))
    click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True) if json_mode
               else result.to_text())
    sys.exit(result.exit_code)
