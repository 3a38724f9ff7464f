"""``vqual patch``: plan, run or resume a rolling hypervisor patch (docs/rolling-patch.md).

Exit codes: a run that sealed its bundle exits with the bundle's verdict (docs/formats.md):
0 pass (every host patched or skipped and requalified, every planned test passed); 1 fail
(halted on a failure, ``deviation.raised`` in the bundle); 3 not-executed (done, but planned
tests have no result, e.g. RP-OQ-01 without a canary); 4 error (a platform error halted it).
Otherwise: 2 bad input, or a gate or the lease refused the run before any change; 3
interrupted (resumable with ``--resume``); 4 platform or connection error before any change.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from qualification.cli.shared import (
    domain_errors,
    existing_shipped_file,
    read_passphrase,
    run_options,
    state_dir_option,
    trust_root_options,
    vault_options,
)
from qualification.errors import BadInputError
from qualification.execution.inventory import VaultOptions
from qualification.platforms import registry
from qualification.platforms.base import HypervisorPlatform
from qualification.state import resolve_state_dir

if TYPE_CHECKING:
    from qualification.rollout.change import RolloutChange
    from qualification.rollout.orchestrator import Orchestrator
    from qualification.rollout.requalify import Requalifier


def platform_and_executor(
    hostvars: Mapping[str, Mapping[str, Any]], cluster: str, platform_host: str | None,
    state_dir: Path | None = None,
) -> tuple[Callable[[], HypervisorPlatform], Any, str | None]:
    """The platform factory, the executor and the ``--limit`` for requalification (None: each
    host's own name) of the change's cluster, from the one platform plug-in that manages it
    (``patch_setup`` of each registered plug-in; docs/rolling-patch.md)."""
    found = [
        (plugin.name, setup) for plugin in registry.plugins()
        if (setup := plugin.patch_setup(hostvars, cluster, platform_host, state_dir)) is not None
    ]
    if len(found) > 1:
        raise BadInputError(f"several platforms manage cluster {cluster} "
                            f"({', '.join(name for name, _ in found)}): name one with --platform-host")
    if not found:
        if platform_host is not None:
            raise BadInputError(
                f"inventory host {platform_host} is no platform endpoint of cluster {cluster}"
            )
        raise BadInputError(f"inventory: no platform endpoint manages cluster {cluster!r} "
                            f"(platforms: {', '.join(registry.names())})")
    setup = found[0][1]
    return setup.factory, setup.executor, setup.qualify_limit


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
@vault_options
@trust_root_options
@state_dir_option
@domain_errors
def patch(
    inventory: Path, change_file: Path, plan_only: bool, bind: str | None,
    resume_run: str | None, platform_host: str | None, requalify_mode: str | None,
    key_file: Path | None, passphrase_fd: int | None, evidence_dir: Path, run_id: str | None,
    initiator: str | None, json_mode: bool, state_dir: Path | None, vault: VaultOptions,
    trust_root: Path | None, legacy_trust: bool,
) -> None:
    """Patch the change's cluster one host at a time: drain, maintenance, patch, reboot,
    requalify, return. Progress per host and step goes to stderr."""
    from qualification.review.pinned import LEGACY_ENV
    from qualification.signing.trust_root import PIN_ENV

    # The requalification runs this starts judge trust the same way: through the environment.
    if trust_root is not None:
        os.environ[PIN_ENV] = str(trust_root.absolute())
    if legacy_trust:
        os.environ[LEGACY_ENV] = "1"
    from qualification.config import load_config
    from qualification.execution.inventory import read_hostvars
    from qualification.rollout.change import load_change
    from qualification.rollout.orchestrator import Orchestrator, resumable
    from qualification.rollout.requalify import PlatformRequalifier, QualifyRequalifier

    if bind is not None and resume_run is not None:
        raise BadInputError("--bind and --resume exclude each other (a resumed run keeps its plan)")
    state = resolve_state_dir(state_dir)
    config = load_config(state)
    change = load_change(change_file, change_id_pattern=config.change_id_pattern or None)
    if resume_run is not None and not plan_only:
        resumable(state, resume_run, change)  # refused before the inventory and the key are read
    ssh_vars = tuple(dict.fromkeys(v for p in registry.plugins() for v in p.patch_vars))
    hostvars = read_hostvars(inventory, names=ssh_vars, patterns=("vqual_.*",), vault=vault)
    if not hostvars:
        raise BadInputError("no hosts in the inventory", where=str(inventory))
    factory, executor, qualify_limit = platform_and_executor(hostvars, change.cluster,
                                                             platform_host, state)

    def progress(line: str) -> None:
        click.echo(f"vqual: {line}", err=True)

    if plan_only:
        _print_plan(Orchestrator(factory, executor, PlatformRequalifier(), change, state, None,
                                 progress=progress), json_mode)

    from qualification.execution.qualify import _check_executor_trusted
    from qualification.execution.recorder import open_signer_with
    from qualification.rollout.evidence import PatchEvidence

    who = initiator or os.environ.get("VQUAL_INITIATOR") or getpass.getuser()
    key = key_file or state / "keys" / "executor.pem"
    signer, passphrase = open_signer_with(
        key, lambda: read_passphrase(passphrase_fd, "Key passphrase: ")
    )
    progress(_check_executor_trusted(state, signer.keyid))
    requalifier = _requalifier(requalify_mode, change, lambda: QualifyRequalifier(
        inventory=inventory, key_file=key,
        passphrase_reader=lambda: passphrase or b"", evidence_dir=evidence_dir,
        state_dir=state, initiator=who,
        limit_for=(lambda _host: qualify_limit) if qualify_limit else None, vault=vault,
    ))
    evidence = PatchEvidence(evidence_dir, signer, who, state_dir=state)
    orch = Orchestrator(factory, executor, requalifier, change, state, evidence,
                        progress=progress)
    try:
        if resume_run is not None:
            outcome = orch.resume(resume_run, new_run=run_id)
        else:
            outcome = orch.run(bind=bind, run_id=run_id)
    finally:
        close = getattr(executor, "close", None)
        if callable(close):
            close()
    if json_mode:
        click.echo(json.dumps(outcome.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(outcome.to_text(f"vqual patch -i {inventory} --change {change_file}"))
    sys.exit(outcome.exit_code)


def _print_plan(orch: Orchestrator, json_mode: bool) -> NoReturn:
    """``--plan``: print the live plan and exit 0 when it is feasible, else 1."""
    from qualification.rollout.planner import render_plan

    try:
        plan = orch.plan()
    finally:
        orch.close()
    if json_mode:
        click.echo(json.dumps(plan.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(render_plan(plan))
    sys.exit(0 if plan.feasible else 1)


def _requalifier(mode: str | None, change: RolloutChange,
                 qualify: Callable[[], Requalifier]) -> Requalifier:
    """``--requalify``: ``platform`` the built-in tests, ``qualify`` (made by ``qualify``) also
    `vqual qualify` per host; the default is ``qualify`` when the change names a spec."""
    from qualification.rollout.requalify import PlatformRequalifier

    mode = mode or ("qualify" if change.requalify is not None else "platform")
    if mode != "qualify":
        return PlatformRequalifier()
    if change.requalify is None:
        raise BadInputError("--requalify qualify needs requalify.spec in the change file")
    return qualify()
