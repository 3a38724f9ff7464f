"""``vqual cleanup``: remove the throwaway VMs and markers a run left behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from qualification.cli.shared import domain_errors, state_dir_option, vault_options
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


@click.command()
@click.argument("run_id")
@click.option("-i", "--inventory", required=True, type=click.Path(path_type=Path),
              help="Inventory; every platform target in it (a host with vqual_libvirt_uri, "
              "vqual_vsphere_host, ...) is cleaned.")
@click.option("--json", "json_mode", is_flag=True, help="Print the result as JSON.")
@vault_options
@state_dir_option
@domain_errors
def cleanup(run_id: str, inventory: Path, json_mode: bool, state_dir: Path | None,
            vault: VaultOptions) -> None:
    """Remove every throwaway VM run RUN_ID made, also after a crash (found by its tag),
    and the libvirt maintenance markers it set.

    Exit 0 when nothing of the run is left; 4 when a host could not be reached or something
    could not be removed.
    """
    from qualification.cleanup import cleanup as run_cleanup
    from qualification.errors import EXIT_PLATFORM

    result = run_cleanup(inventory, run_id, resolve_state_dir(state_dir), vault=vault)
    if json_mode:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        for target in result.targets:
            removed = ", ".join(target.removed) or "nothing of this run"
            click.echo(f"{target.endpoint} ({', '.join(target.hosts)}): removed {removed}")
            for problem in target.errors + [f"file left: {f}" for f in target.files_left]:
                click.echo(f"vqual: {target.endpoint}: {problem}", err=True)
    sys.exit(0 if result.ok else EXIT_PLATFORM)
