"""``vqual drift``: compare the live state with a signed baseline bundle (docs/master-vm.md).

Exit codes: 0 no drift; 1 drift found, or the baseline does not verify (with the reason);
2 bad input, nothing executed; 3 a test could not be performed (not-executed); 4 a target
could not be observed (platform or connection).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from qualification.cli.shared import (
    domain_errors,
    forks_option,
    read_passphrase,
    run_options,
    state_dir_option,
    vault_options,
)
from qualification.errors import BadInputError
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


def _allowed_file(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"cannot read allowed differences: {exc}", where=str(path)) from None
    from qualification.checks.fingerprint_model import AllowedDifferences

    AllowedDifferences.from_json(data, where=str(path))  # refused here, before anything runs
    return dict(data or {})


@click.command()
@click.option(
    "--baseline",
    "baseline",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The baseline: a sealed evidence bundle that verifies (evidence/<change>/<run>).",
)
@click.option(
    "-i",
    "--inventory",
    required=True,
    type=click.Path(path_type=Path),
    help="Ansible inventory of the targets to compare.",
)
@click.option(
    "-c",
    "--change",
    "change_id",
    default=None,
    help="Change or review id the drift run is recorded under, e.g. CHG0012345.",
)
@click.option("--limit", default=None, help="Only these hosts (Ansible limit pattern).")
@click.option(
    "--allowed",
    "allowed_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML of allowed differences: {identity: [...], sizing: {vcpus: {min, max}, "
    "memory_mib: {min, max}}}; default every identity field, no sizing change.",
)
@run_options()
@click.option(
    "--json",
    "json_mode",
    is_flag=True,
    help="Print one JSON document (schema vqual.drift/v1) on stdout.",
)
@forks_option
@vault_options
@state_dir_option
@domain_errors
def drift(
    baseline: Path,
    inventory: Path,
    change_id: str | None,
    limit: str | None,
    allowed_file: Path | None,
    key_file: Path | None,
    passphrase_fd: int | None,
    evidence_dir: Path,
    run_id: str | None,
    initiator: str | None,
    json_mode: bool,
    state_dir: Path | None,
    vault: VaultOptions,
    forks: int | None,
) -> None:
    """Compare the live state of hosts, hypervisors and VMs with a signed BASELINE bundle.

    The baseline must verify. Each target's live fingerprint is compared with the
    baseline's (its own, or the only one: a Master-VM's for its clones); baseline tests
    of targets without a fingerprint are run again and compared. Every difference is
    listed (what, where, baseline value, live value) and recorded in a new bundle (mode
    drift). No prompts unless the key needs a passphrase and none is given with
    --passphrase-fd.

    Exit 0 no drift, 1 drift (or the baseline does not verify), 2 bad input, 3 a test
    could not be performed (not-executed), 4 platform or connection error.
    """
    from qualification.execution.drift import DriftRequest, run_drift

    state = resolve_state_dir(state_dir)
    summary = run_drift(
        DriftRequest(
            baseline=baseline,
            inventory=inventory,
            change_id=change_id,
            key_file=key_file or state / "keys" / "executor.pem",
            passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
            evidence_dir=evidence_dir,
            state_dir=state,
            initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
            run_id=run_id,
            limit=limit,
            allowed=_allowed_file(allowed_file),
            vault=vault,
            forks=forks,
        )
    )
    if json_mode:
        click.echo(json.dumps(summary.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text())
    sys.exit(summary.exit_code)
