"""``vqual qualify``: qualify an inventory's targets against a spec; a signed evidence bundle."""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from pathlib import Path

import click

from qualification.cli.shared import (
    domain_errors,
    forks_option,
    progress_printer,
    push_on_seal,
    push_options,
    read_passphrase,
    run_options,
    shipped_path,
    state_dir_option,
    trust_root_options,
    vault_options,
)
from qualification.errors import BadInputError
from qualification.execution.inventory import VaultOptions
from qualification.state import resolve_state_dir


def _check_playbook(name: str) -> None:
    """A playbook name for ``--playbook``: a file in the collection's ``playbooks/`` (a
    collection of this package's version)."""
    from qualification.execution.collection import collection_for_run

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml", name):
        raise BadInputError(
            f"--playbook {name!r}: give a file name from playbooks/, e.g. kvm_cluster.yml"
        )
    if not (collection_for_run() / "playbooks" / name).is_file():
        raise BadInputError(f"--playbook {name}: no such playbook in the collection's playbooks/")


def _slice(slice_of: str | None, parent: str | None, job: str | None) -> dict[str, object]:
    """The ``slice`` block of ``--slice``, ``--slice-parent`` and ``--slice-job``."""
    from qualification.execution.slicing import parse_slice_option, slice_block

    if parent is None:
        raise BadInputError("--slice and --slice-job need --slice-parent ID (what the slices share)")
    index, count = parse_slice_option(slice_of) if slice_of is not None else (None, None)
    return slice_block(index, count, job, parent)


@click.command()
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory (file or directory).")
@click.option("-s", "--spec", required=True, type=click.Path(path_type=Path),
              callback=shipped_path,
              help="Spec (protocol) file, apiVersion vqual/v1; a shipped one also by name "
              "(linux-virt-host) or as specs/<name>.yaml from anywhere.")
@click.option("-c", "--change", "change_id", default=None,
              help="Change id the run belongs to (required), e.g. CHG0012345.")
@run_options()
@click.option("--limit", default=None, help="Only these hosts (Ansible limit pattern).")
@click.option("--test", "tests", multiple=True, help="Only this test id (repeatable).")
@click.option("--check", "check_mode", is_flag=True,
              help="Ansible check mode: IQ reads only; OQ steps are not executed.")
@click.option("--json", "json_mode", is_flag=True,
              help="Print one JSON document (schema vqual.qualify/v1) on stdout.")
@click.option("--allow-empty", is_flag=True,
              help="Record a run even if no test applies (else exit 2); to measure start-up.")
@click.option("--playbook", default="qualify.yml", show_default=True,
              help="Playbook of the collection's playbooks/ to run, e.g. kvm_cluster.yml "
              "(its host group; -s still names the spec).")
@click.option("--slice", "slice_of", default=None, metavar="INDEX/COUNT",
              help="This run is slice INDEX of COUNT of a sliced job (e.g. GitLab's "
              "$CI_NODE_INDEX/$CI_NODE_TOTAL); needs --slice-parent.")
@click.option("--slice-parent", default=None, metavar="ID",
              help="The id the slices of one job share (e.g. $CI_PIPELINE_ID); `vqual join "
              "--parent ID` joins them.")
@click.option("--slice-job", default=None, metavar="ID", help="This slice's own job id.")
@push_options
@forks_option
@vault_options
@trust_root_options
@state_dir_option
@domain_errors
def qualify(
    inventory: Path, spec: Path, change_id: str | None, key_file: Path | None,
    passphrase_fd: int | None, evidence_dir: Path, run_id: str | None, limit: str | None,
    tests: tuple[str, ...], initiator: str | None, check_mode: bool, json_mode: bool,
    allow_empty: bool, playbook: str, slice_of: str | None, slice_parent: str | None,
    slice_job: str | None, state_dir: Path | None, vault: VaultOptions,
    trust_root: Path | None, legacy_trust: bool, push_url: str | None, no_push: bool,
    token_file: Path | None, forks: int | None,
) -> None:
    """Qualify the inventory's targets against SPEC and write a signed evidence bundle.

    With an evidence server (--push URL, $VQUAL_SERVER_URL or push_server in config.yaml)
    the sealed run is pushed; a push that fails says so in one line and leaves the run
    sealed here for vqual push later (the exit code stays the run's)."""
    from qualification.execution.qualify import QualifyRequest, run_qualify

    _check_playbook(playbook)
    extravars: dict[str, object] = {"vqual_allow_empty": True} if allow_empty else {}
    if slice_of is not None or slice_parent is not None or slice_job is not None:
        extravars["vqual_slice"] = _slice(slice_of, slice_parent, slice_job)
    state = resolve_state_dir(state_dir)
    request = QualifyRequest(
        inventory=inventory, spec=spec, change_id=change_id,
        key_file=key_file or state / "keys" / "executor.pem",
        passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "),
        evidence_dir=evidence_dir, run_id=run_id, limit=limit, tests=list(tests) or None,
        initiator=initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser(),
        check_mode=check_mode, state_dir=state,
        progress=progress_printer(json_mode),
        extravars=extravars,
        playbook=playbook, vault=vault, trust_root=trust_root, legacy_trust=legacy_trust,
        forks=forks,
    )
    summary = run_qualify(request)
    pushed = push_on_seal(state, push_url, no_push, token_file,
                          summary.bundle if summary.seal else None)
    if json_mode:
        payload = summary.to_json() | ({"push": pushed} if pushed else {})
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(summary.to_text() + (f"\n{pushed['message']}" if pushed else ""))
    sys.exit(summary.exit_code)
