"""``vqual convert``: a conversion (P2V, V2V) qualified by difference (docs/conversion.md).

``baseline`` takes the signed baseline of the source before the conversion; ``qualify``
compares the target after it with that baseline. Exit codes as every run: 0 passed (no
difference beyond the allowed ones), 1 a difference not allowed or a baseline that does not
verify, 2 bad input, 3 incomplete, 4 platform or connection error.
"""

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

DEFAULT_SPEC = Path("specs/conversion.yaml")


@click.group()
def convert() -> None:
    """Conversion (P2V, V2V) qualified by difference from a signed source baseline."""


@convert.command("baseline")
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory with the source (its vqual_app_data names its data).")
@click.option("--limit", "source", required=True, help="The one source host or VM.")
@click.option("-s", "--spec", default=DEFAULT_SPEC, show_default=True,
              type=click.Path(path_type=Path), callback=shipped_path,
              help="Spec with fingerprint tests and a conversion section (allowed differences; "
              "specs/p2v.yaml for a physical source).")
@playbook_run_options("vqual.qualify/v1", "Change id of the conversion")
@domain_errors
def baseline_cmd(
    inventory: Path, source: str, spec: Path, change_id: str | None, key_file: Path | None,
    passphrase_fd: int | None, evidence_dir: Path, run_id: str | None, initiator: str | None,
    json_mode: bool, forks: int | None, vault: VaultOptions, state_dir: Path | None,
) -> None:
    """Take the signed baseline of the SOURCE before a conversion.

    A qualification run of SPEC on the source alone: its fingerprint (virtual or physical
    hardware, OS, packages, services, users, key files) and the digests of its application
    data (vqual_app_data) are sealed in the bundle that vqual convert qualify compares with.
    """
    from qualification.execution.qualify import QualifyRequest, run_qualify

    state = resolve_state_dir(state_dir)
    echo_summary(run_qualify(QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id, evidence_dir=evidence_dir,
        run_id=run_id, limit=source, progress=progress_printer(json_mode), vault=vault,
        forks=forks, **run_identity(state, key_file, passphrase_fd, initiator),
    )), json_mode)


@convert.command("qualify")
@click.option("--baseline", "baseline", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The source baseline bundle (vqual convert baseline); it must verify.")
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory with the conversion target.")
@click.option("--limit", "target", required=True, help="The conversion target (inventory host).")
@playbook_run_options("vqual.conversion/v1", "Change id of the conversion")
@domain_errors
def qualify_cmd(
    baseline: Path, inventory: Path, target: str, change_id: str | None,
    key_file: Path | None, passphrase_fd: int | None, evidence_dir: Path, run_id: str | None,
    initiator: str | None, json_mode: bool, forks: int | None, vault: VaultOptions,
    state_dir: Path | None,
) -> None:
    """Compare the conversion TARGET with the signed source BASELINE.

    The baseline must verify and hold one fingerprint (the source's). Every difference is
    recorded (mode conversion): those its spec's conversion section allows pass and name the
    rule; every other fails, naming what, where and both values; a changed, removed or added
    application data file always fails. The bundle's run.start cites the baseline's seal.
    """
    from qualification.execution.conversion import ConversionRequest, run_conversion

    state = resolve_state_dir(state_dir)
    echo_summary(run_conversion(ConversionRequest(
        baseline=baseline, inventory=inventory, change_id=change_id, limit=target,
        evidence_dir=evidence_dir, run_id=run_id, progress=progress_printer(json_mode),
        vault=vault, forks=forks, **run_identity(state, key_file, passphrase_fd, initiator),
    )), json_mode)
