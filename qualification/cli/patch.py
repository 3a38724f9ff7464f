"""``vqual patch``: plan, run or resume a rolling hypervisor patch (docs/rolling-patch.md).

Exit codes: a run that sealed its bundle exits with the bundle's verdict (docs/formats.md):
0 pass (every host patched or skipped and requalified, every planned test passed); 1 fail
(halted on a failure, ``deviation.raised`` in the bundle); 3 not-executed (done, but planned
tests have no result, e.g. RP-OQ-01 without a canary); 4 error (a platform error halted it).
Otherwise: 2 bad input, or a gate or the lease refused the run before any change; 3
interrupted (resumable with ``--resume``); 4 platform or connection error before any change.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from qualification.cli.shared import (
    domain_errors,
    existing_shipped_file,
    push_on_seal,
    push_options,
    read_passphrase,
    run_options,
    state_dir_option,
    trust_root_options,
    vault_options,
)
from qualification.execution.inventory import VaultOptions
from qualification.rollout.launch import (  # platform_and_executor: tests call it from here
    PatchRequest,
    plan_patch,
    platform_and_executor,
    run_patch,
)
from qualification.state import resolve_state_dir

if TYPE_CHECKING:
    from qualification.rollout.planner import RolloutPlan

__all__ = ["patch", "platform_and_executor"]


@click.command("patch")
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory file naming the platform endpoint(s).")
@click.option("--change", "change_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              callback=existing_shipped_file,
              help="The change file (vqual.change/v1); a shipped example also as "
              "specs/changes/<name>.yaml from anywhere.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Print the plan and its digest; change nothing.")
@click.option("--bind", default=None, metavar="DIGEST",
              help="Run only if the live plan's digest equals DIGEST (from --plan).")
@click.option("--resume", "resume_run", default=None, metavar="RUN_ID",
              help="Continue a crashed or halted run under a new run id linked to it.")
@click.option("--platform-host", default=None,
              help="Inventory host of the platform endpoint, if several manage the cluster.")
@click.option("--requalify", "requalify_mode", type=click.Choice(["platform", "qualify"]),
              default=None, help="platform: the built-in requalification tests; qualify: also "
              "`vqual qualify` with the change's requalify.spec per host (default when the "
              "change names a spec).")
@run_options()
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")
@push_options
@vault_options
@trust_root_options
@state_dir_option
@domain_errors
def patch(
    inventory: Path, change_file: Path, plan_only: bool, bind: str | None,
    resume_run: str | None, platform_host: str | None, requalify_mode: str | None,
    key_file: Path | None, passphrase_fd: int | None, evidence_dir: Path, run_id: str | None,
    initiator: str | None, json_mode: bool, state_dir: Path | None, vault: VaultOptions,
    trust_root: Path | None, legacy_trust: bool, push_url: str | None, no_push: bool,
    token_file: Path | None,
) -> None:
    """Patch the change's cluster one host at a time: drain, maintenance, patch, reboot,
    requalify, return. Progress per host and step goes to stderr. With an evidence server
    (--push URL, $VQUAL_SERVER_URL, push_server in config.yaml) the sealed run is pushed; a
    failed push says so in one line and leaves the run sealed for vqual push later."""
    from qualification.review.pinned import LEGACY_ENV
    from qualification.signing.trust_root import PIN_ENV

    # The requalification runs this starts judge trust the same way: through the environment.
    if trust_root is not None:
        os.environ[PIN_ENV] = str(trust_root.absolute())
    if legacy_trust:
        os.environ[LEGACY_ENV] = "1"
    request = PatchRequest(
        inventory=inventory, change_file=change_file, state_dir=resolve_state_dir(state_dir),
        evidence_dir=evidence_dir, bind=bind, resume_run=resume_run, platform_host=platform_host,
        requalify_mode=requalify_mode, key_file=key_file, run_id=run_id, initiator=initiator,
        passphrase_reader=lambda: read_passphrase(passphrase_fd, "Key passphrase: "), vault=vault,
    )

    def progress(line: str) -> None:
        click.echo(f"vqual: {line}", err=True)

    if plan_only:
        _print_plan(plan_patch(request, progress), json_mode)
    outcome = run_patch(request, progress)
    pushed = push_on_seal(request.state_dir, push_url, no_push, token_file,
                          outcome.bundle if outcome.seal else None)
    if json_mode:
        payload = outcome.to_json() | ({"push": pushed} if pushed else {})
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(outcome.to_text(f"vqual patch -i {inventory} --change {change_file}")
                   + (f"\n{pushed['message']}" if pushed else ""))
    sys.exit(outcome.exit_code)


def _print_plan(plan: RolloutPlan, json_mode: bool) -> NoReturn:
    """``--plan``: print the live plan and exit 0 when it is feasible, else 1."""
    from qualification.rollout.planner import render_plan

    if json_mode:
        click.echo(json.dumps(plan.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(render_plan(plan))
    sys.exit(0 if plan.feasible else 1)
