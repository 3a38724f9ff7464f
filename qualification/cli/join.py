"""``vqual join``: a sealed run that cites every slice of a sliced job (docs/aap.md)."""

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


@click.command()
@click.argument("change_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--parent", required=True, metavar="ID",
              help="The slice parent the slices share (--slice-parent; AWX: the workflow job id).")
@click.option("--expect", type=int, default=None, metavar="K",
              help="Refuse unless K slices are sealed (AWX records no slice count).")
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None,
              envvar="VQUAL_KEY_FILE",
              help="Executor's signing key ($VQUAL_KEY_FILE); default <state dir>/keys/executor.pem.")
@passphrase_fd_option()
@click.option("--run-id", default=None, help="Run id (default: UTC time and a random suffix).")
@click.option("--initiator", default=None,
              help="Person or pipeline user who started the run (default: $VQUAL_INITIATOR or "
              "the login user).")
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
@state_dir_option
@domain_errors
def join(
    change_dir: Path, parent: str, expect: int | None, key_file: Path | None,
    passphrase_fd: int | None, run_id: str | None, initiator: str | None,
    json_mode: bool, state_dir: Path | None,
) -> None:
    """Verify CHANGE_DIR (evidence/<change id>) and write a join run citing the seal of every
    slice of parent ID.

    Refuses (nothing written) when the change does not verify, a slice is missing or did not
    finish. Exit 0 when every slice passed, 1 when one failed, as `vqual qualify`.
    """
    from qualification.execution.join import JoinRequest, run_join

    state = resolve_state_dir(state_dir)
    summary = run_join(JoinRequest(
        change_dir=change_dir, parent=parent, expect=expect,
        key_file=key_file or state / "keys" / "executor.pem",
        passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
        state_dir=state,
        initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        run_id=run_id,
    ))
    click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True) if json_mode
               else summary.to_text())
    sys.exit(summary.exit_code)
